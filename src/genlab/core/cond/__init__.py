"""Conditioning encoders (text and image) behind one interface each."""
