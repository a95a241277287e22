"""Search a photo library by Russian text or by example images: an incremental on-disk index
(index.ImageIndex), exact and faiss search, and a web page (`ruclip serve`, in ruclip.serve)."""
from .index import Hit, ImageIndex
from .query import Term, parse_terms
from .update import UpdateReport

__all__ = ['ImageIndex', 'Hit', 'Term', 'UpdateReport', 'parse_terms']
