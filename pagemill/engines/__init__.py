"""Page engines: the PDF text layer and CPU OCR (Tesseract, RapidOCR)."""
