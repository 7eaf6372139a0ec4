"""The service layer: what happens to contacts and routing versions, vendor-free.

Handlers (HTTP, CLI) call these functions; they combine the pure core (``router.core``)
with the store. See ARCHITECTURE.md.
"""
