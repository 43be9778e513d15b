"""Built-in mmalign modality plugins, registered exactly like third-party ones."""
