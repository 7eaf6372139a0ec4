"""Switchboard: routes customer contacts between an outsourced partner and the in-house hotline."""
