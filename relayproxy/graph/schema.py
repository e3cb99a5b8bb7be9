"""The graph's schema, as numbered migrations recorded in the database itself.

Each migration is a list of SQL statements applied once, in order, inside one transaction;
`_migrations` remembers which ran. Never edit a migration that has shipped: add a new one.

Dates are stored as ISO 8601 UTC text (``2026-11-20T08:12:00Z``) so that text order is time
order and min()/max() work in SQL. Addresses and domains are stored lower-cased.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[list[str]] = [
    # 1: the graph, the journal and the settings members change on the site.
    [
        """CREATE TABLE members (
            id INTEGER PRIMARY KEY,
            login TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            sharing TEXT NOT NULL DEFAULT 'metadata',   -- from the config file
            sharing_override TEXT,                      -- set on the settings page; wins
            in_config INTEGER NOT NULL DEFAULT 1
        )""",
        """CREATE TABLE member_addresses (
            address TEXT PRIMARY KEY,
            member_id INTEGER NOT NULL REFERENCES members(id)
        )""",
        """CREATE TABLE sharing_exceptions (
            member_id INTEGER NOT NULL REFERENCES members(id),   -- who grants
            viewer_id INTEGER NOT NULL REFERENCES members(id),   -- to whom
            level TEXT NOT NULL,
            PRIMARY KEY (member_id, viewer_id)
        )""",
        """CREATE TABLE companies (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            domain TEXT NOT NULL UNIQUE,
            description TEXT,
            website TEXT,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE company_domains (
            domain TEXT PRIMARY KEY,
            company_id INTEGER NOT NULL REFERENCES companies(id)
        )""",
        """CREATE TABLE people (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            name_from_display INTEGER NOT NULL DEFAULT 0,  -- 0 guessed, 1 named by others, 2 by themselves
            company_id INTEGER REFERENCES companies(id),
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX people_company ON people(company_id)",
        """CREATE TABLE addresses (
            address TEXT PRIMARY KEY,
            person_id INTEGER NOT NULL REFERENCES people(id),
            display_name TEXT
        )""",
        "CREATE INDEX addresses_person ON addresses(person_id)",
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,          -- Message-ID, else sha256 of the header block
            message_id TEXT,
            subject TEXT NOT NULL DEFAULT '',
            date TEXT NOT NULL,
            from_address TEXT,
            from_name TEXT,
            automated INTEGER NOT NULL DEFAULT 0,
            has_body INTEGER NOT NULL DEFAULT 0,
            main_text TEXT,
            full_text TEXT,
            html TEXT,
            size INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX messages_date ON messages(date)",
        """CREATE TABLE participants (
            message_id INTEGER NOT NULL REFERENCES messages(id),
            address TEXT NOT NULL,
            role TEXT NOT NULL,                -- from, to, cc, bcc
            display_name TEXT,
            PRIMARY KEY (message_id, role, address)
        ) WITHOUT ROWID""",
        "CREATE INDEX participants_address ON participants(address)",
        """CREATE TABLE copies (
            message_id INTEGER NOT NULL REFERENCES messages(id),
            member_id INTEGER NOT NULL REFERENCES members(id),
            source TEXT NOT NULL,
            private INTEGER NOT NULL DEFAULT 0,
            captured_at TEXT NOT NULL,
            PRIMARY KEY (message_id, member_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX copies_member ON copies(member_id)",
        """CREATE TABLE interactions (
            member_id INTEGER NOT NULL REFERENCES members(id),
            person_id INTEGER NOT NULL REFERENCES people(id),
            message_id INTEGER NOT NULL REFERENCES messages(id),
            outbound INTEGER NOT NULL,
            at TEXT NOT NULL,
            recipients INTEGER NOT NULL DEFAULT 1,
            PRIMARY KEY (member_id, person_id, message_id, outbound)
        ) WITHOUT ROWID""",
        "CREATE INDEX interactions_person ON interactions(person_id, at)",
        "CREATE INDEX interactions_message ON interactions(message_id)",
        """CREATE TABLE stats (
            member_id INTEGER NOT NULL REFERENCES members(id),
            person_id INTEGER NOT NULL REFERENCES people(id),
            first_at TEXT NOT NULL,
            last_at TEXT NOT NULL,
            sent INTEGER NOT NULL DEFAULT 0,       -- messages from the member to the person
            received INTEGER NOT NULL DEFAULT 0,   -- messages from the person to the member
            last_in TEXT,
            last_out TEXT,
            PRIMARY KEY (member_id, person_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX stats_person ON stats(person_id)",
        """CREATE TABLE attachments (
            id INTEGER PRIMARY KEY,
            message_id INTEGER NOT NULL REFERENCES messages(id),
            sha256 TEXT NOT NULL,
            filename TEXT,
            content_type TEXT NOT NULL,
            size INTEGER NOT NULL,
            UNIQUE (message_id, sha256, filename)
        )""",
        """CREATE TABLE journal (
            id INTEGER PRIMARY KEY,
            member TEXT NOT NULL,
            source TEXT NOT NULL,
            recipients TEXT NOT NULL DEFAULT '[]',   -- JSON list of envelope recipients
            state TEXT NOT NULL,                     -- pending | accepted
            created_at TEXT NOT NULL,
            raw BLOB NOT NULL                        -- last: SQLite writes a zeroblob lazily only there
        )""",
        """CREATE TABLE unparsable (
            id INTEGER PRIMARY KEY,
            member TEXT,
            source TEXT NOT NULL,
            origin TEXT,
            error TEXT NOT NULL,
            created_at TEXT NOT NULL,
            raw BLOB NOT NULL
        )""",
        """CREATE TABLE exclusions (
            pattern TEXT PRIMARY KEY,              -- an address, or a domain
            created_by INTEGER REFERENCES members(id),
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE private_people (
            member_id INTEGER NOT NULL REFERENCES members(id),
            person_id INTEGER NOT NULL REFERENCES people(id),
            PRIMARY KEY (member_id, person_id)
        ) WITHOUT ROWID""",
        # External-content index over messages(subject, full_text): no second copy of the text.
        # columnsize=0: searches are not ranked, so the per-row column sizes are not kept.
        """CREATE VIRTUAL TABLE message_text USING fts5(
            subject, full_text, content='messages', content_rowid='id',
            tokenize='unicode61 remove_diacritics 2', columnsize=0
        )""",
    ],
    # 2: history sync progress, per member and mailbox (graph/sync_state.py).
    [
        """CREATE TABLE sync_state (
            member TEXT NOT NULL,                    -- the member's login
            mailbox TEXT NOT NULL,                   -- the upstream mailbox name
            uidvalidity INTEGER NOT NULL,            -- UIDs below are only meaningful with it
            headers_uid INTEGER NOT NULL DEFAULT 0,  -- every UID up to it: headers ingested
            bodies_uid INTEGER NOT NULL DEFAULT 0,   -- every UID up to it: full message ingested
            in_window INTEGER NOT NULL DEFAULT 0,    -- messages in the history window at the last search
            headers_done INTEGER NOT NULL DEFAULT 0,
            bodies_done INTEGER NOT NULL DEFAULT 0,
            new_messages INTEGER NOT NULL DEFAULT 0, -- not in the graph before the sync
            status TEXT NOT NULL DEFAULT 'running',  -- running | done | failed
            error TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (member, mailbox)
        ) WITHOUT ROWID""",
    ],
    # 3: enrichment (graph/enrich_store.py): every value found with its provenance, overrides set
    # by people (they win and survive re-enrichment), display names as used, website fetches; the
    # effective values live on people and companies so lists read them without joins.
    [
        """CREATE TABLE person_facts (
            person_id INTEGER NOT NULL REFERENCES people(id),
            field TEXT NOT NULL,                 -- job_title | phone | link | company
            value TEXT NOT NULL,                 -- phones in E.164, links canonical
            source TEXT NOT NULL,                -- signature | vcard
            confidence REAL NOT NULL,
            message_id INTEGER REFERENCES messages(id),  -- the newest message stating it
            seen_at TEXT NOT NULL,               -- that message's date
            first_seen TEXT NOT NULL,
            times INTEGER NOT NULL DEFAULT 1,
            PRIMARY KEY (person_id, field, value)
        ) WITHOUT ROWID""",
        """CREATE TABLE company_facts (
            company_id INTEGER NOT NULL REFERENCES companies(id),
            field TEXT NOT NULL,                 -- name | website
            value TEXT NOT NULL,
            source TEXT NOT NULL,                -- signature | organization
            confidence REAL NOT NULL,
            message_id INTEGER REFERENCES messages(id),
            seen_at TEXT NOT NULL,
            times INTEGER NOT NULL DEFAULT 1,
            PRIMARY KEY (company_id, field, value)
        ) WITHOUT ROWID""",
        """CREATE TABLE overrides (
            kind TEXT NOT NULL,                  -- person | company
            entity_id INTEGER NOT NULL,
            field TEXT NOT NULL,                 -- name, job_title, phones, links | name, description, website
            value TEXT NOT NULL,                 -- JSON
            member_id INTEGER REFERENCES members(id),
            set_at TEXT NOT NULL,
            PRIMARY KEY (kind, entity_id, field)
        ) WITHOUT ROWID""",
        """CREATE TABLE display_names (
            address TEXT NOT NULL,               -- the sender's address
            name TEXT NOT NULL,                  -- a display name they used on their own mail
            times INTEGER NOT NULL DEFAULT 1,
            last_at TEXT NOT NULL,
            PRIMARY KEY (address, name)
        ) WITHOUT ROWID""",
        """CREATE TABLE websites (
            domain TEXT PRIMARY KEY,             -- a company's primary domain
            url TEXT,
            status TEXT NOT NULL,                -- ok | failed | disallowed
            error TEXT,
            title TEXT,
            description TEXT,
            logo TEXT,
            fetched_at TEXT NOT NULL
        )""",
        "ALTER TABLE people ADD COLUMN job_title TEXT",
        "ALTER TABLE people ADD COLUMN phones TEXT NOT NULL DEFAULT '[]'",  # JSON list, E.164
        "ALTER TABLE people ADD COLUMN links TEXT NOT NULL DEFAULT '[]'",  # JSON list of URLs
        "ALTER TABLE companies ADD COLUMN logo TEXT",
    ],
    # 4: continuous sync (issue 7): the credentials of members who opted in, sealed with a key
    # that is not in the database (relayproxy/sealing.py, graph/credentials.py), and how far
    # each IDLE watcher has read each mailbox (graph/watch_state.py).
    [
        """CREATE TABLE sync_credentials (
            member TEXT PRIMARY KEY,             -- the member's login
            sealed BLOB NOT NULL,                -- Fernet token of the user name and password
            created_at TEXT NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE watch_state (
            member TEXT NOT NULL,
            mailbox TEXT NOT NULL,
            uidvalidity INTEGER NOT NULL,
            last_uid INTEGER NOT NULL,           -- every UID up to it was read (or predates the watch)
            captured INTEGER NOT NULL DEFAULT 0, -- messages fetched by the watcher
            updated_at TEXT NOT NULL,
            PRIMARY KEY (member, mailbox)
        ) WITHOUT ROWID""",
    ],
]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this database has not seen; return how many ran."""
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (id INTEGER PRIMARY KEY, applied_at TEXT)")
    done = {row[0] for row in conn.execute("SELECT id FROM _migrations")}
    ran = 0
    for number, statements in enumerate(MIGRATIONS, start=1):
        if number in done:
            continue
        with conn:
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO _migrations (id, applied_at) VALUES (?, strftime('%Y-%m-%dT%H:%M:%SZ'))",
                (number,),
            )
        ran += 1
    return ran
