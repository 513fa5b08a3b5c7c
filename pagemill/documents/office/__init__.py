"""Office documents (DOCX, PPTX, XLSX, ODF, HTML, EPUB, EML and legacy formats) read into pages of blocks."""
