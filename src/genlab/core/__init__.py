"""Paper-agnostic parts shared by several systems. Systems depend on core, never the reverse."""
