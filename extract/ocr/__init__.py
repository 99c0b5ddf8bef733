"""Poster text by OCR (paper 004 reads the text printed on a poster as a second modality):
`engines` (the `OCR_ENGINES` registry: rapidocr, tesseract) and `run` (the resumable step
that writes one table of texts by id, joined back with `--text-file`)."""
