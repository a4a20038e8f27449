"""Script: opcodes, parsing, interpreter, signature hashes and standard templates."""
