"""The SQLAlchemy 2 Core implementation of the nine stores, on an AsyncEngine."""
