"""Dataset plugins: one module per registry name (`-` written as `_`), found by the registry
by reading this package's source. `base` holds the plugin API; modules starting with `_` are
helpers shared by several built-ins and register nothing."""
