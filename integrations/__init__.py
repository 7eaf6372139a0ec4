"""Provider adapters: each module turns one provider's wire format into core values and back."""
