"""Opening, checking and rendering untrusted documents."""
