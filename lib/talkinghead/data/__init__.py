"""Data: the SynthGRID corpus generator (``synthgrid``) and, later, corpus readers and datasets."""
