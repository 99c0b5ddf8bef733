"""Stage 1: read a data set, run one encoder over one modality, write an HDF5 cache."""
