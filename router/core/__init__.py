"""The pure core: values and functions, no I/O, no clock (see ARCHITECTURE.md)."""
