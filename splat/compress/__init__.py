"""Compact splats and other output formats.

- quantize: our quantized container (.splatq): k-means codebooks, dense-and-sparse outliers,
  Morton order, zstd, checksummed sections (container), exact decoder.
- compressed_ply (SuperSplat / PlayCanvas), spz (Niantic), dotsplat (antimatter15 .splat).
- mesh: TSDF fusion of rendered depths (Open3D); flythrough: camera paths and .mp4 videos.
`splat.export` dispatches `splat export RUN --format ...` to these.
"""
