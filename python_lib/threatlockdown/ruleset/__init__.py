"""Wazuh-4.x-compatible ruleset: pre-decoding, decoders, rules and the rule engine."""
