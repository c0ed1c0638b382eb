"""Audio in and out: probing and decoding, chunk planning, uploads and tus, storage, tombstones."""
