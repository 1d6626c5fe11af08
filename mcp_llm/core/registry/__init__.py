"""The model and adapter registries: SQLite tables in the shared database, paths confined to their stores."""
