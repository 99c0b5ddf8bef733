"""Stage 2: fusion heads trained on cached features (torch, numpy, h5py, sklearn only)."""
