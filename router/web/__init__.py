"""The HTTP shell: the aiohttp application, webhooks, the operators' API and console."""
