"""One module per pipeline stage: read inputs, call the library, write outputs atomically."""
