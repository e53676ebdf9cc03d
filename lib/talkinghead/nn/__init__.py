"""Building blocks shared by architectures, and the measurement networks (landmarks, SyncNet)."""
