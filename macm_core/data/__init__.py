"""HMI-Synth: the label vocabulary, seeded motions, captions and QA built from the labels."""
