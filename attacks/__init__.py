"""Attack plugins: one per file, file name == registry name (`-` written as `_`)."""
