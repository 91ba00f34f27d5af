"""From a video to keyframes: decoding (``video``), the HMI quality filters over a pose
track (``filters``) and keyframe sampling (``sampling``).

Import from the submodules; this package imports nothing so that ``filters`` and
``sampling`` do not pull in PyAV.
"""
