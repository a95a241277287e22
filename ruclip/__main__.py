"""python -m ruclip: the `ruclip` command."""
from .cli import main

if __name__ == '__main__':
    raise SystemExit(main())
