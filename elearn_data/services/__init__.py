"""The public facade (db.users, db.catalog, ...): each method is one unit of work."""
