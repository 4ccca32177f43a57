//! mailfold-sasl: sans-IO SASL mechanisms.
