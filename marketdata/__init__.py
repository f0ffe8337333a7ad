"""Market data shared by training and serving (torch-free): readers, validation, sources, a cache."""
