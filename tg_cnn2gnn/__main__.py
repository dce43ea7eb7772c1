"""``python -m tg_cnn2gnn`` = the ``cnn2gnn`` command line (:mod:`tg_cnn2gnn.cli`)."""
from tg_cnn2gnn.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
