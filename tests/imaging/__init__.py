"""Tests of the imaging layer."""
