"""End-to-end and partial fine-tuning: backbones from ENCODERS + a head from FUSIONS, trained jointly."""
