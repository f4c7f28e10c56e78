"""Evaluation: image sets, spectra, FID/KID features, FINC, the probe, STIG, the report."""
