"""Compressed splat formats.

- quantize: our quantized container (.splatq): k-means codebooks, dense-and-sparse outliers,
  Morton order, zstd, checksummed sections (container), exact decoder.
- compressed_ply (SuperSplat / PlayCanvas), spz (Niantic), dotsplat (antimatter15 .splat).
- sog (PlayCanvas SOG), gltf (glTF KHR_gaussian_splatting .glb).
`splat.export` dispatches `splat export RUN --format ...` to these.
"""
