"""The two-minute demo and the throwaway peers it shares with the tests."""
