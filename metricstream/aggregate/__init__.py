"""The aggregation core (placeholder docstring)."""
