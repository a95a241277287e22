"""`ruclip serve`: a small web page to search an ImageIndex (standard library HTTP server)."""
