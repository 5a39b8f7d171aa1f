"""The CRM gateway (`pulse gateway`, SPEC 8): CRM webhooks in, verified, mapped to section 1 events, published."""
