"""The HDF5 feature cache: the contract between extraction and head training."""
