"""Input and output: image folders, COLMAP models, transforms.json, 3DGS .ply, scene layouts."""

from splat.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from splat.io.colmap import ColmapModel, check_names, read_model, write_model
from splat.io.datasets import Scene, detect_layout, load_scene, tnt_split
from splat.io.exif import CameraExif, FocalPrior, focal_prior, intrinsics_groups, read_camera_exif
from splat.io.images import (
    ImageSet,
    UnreadableImageWarning,
    list_images,
    load_image_folder,
    read_image,
    require_views,
)
from splat.io.nerfstudio import read_transforms, write_transforms
from splat.io.ply import read_ply, read_points_ply, write_ply, write_points_ply

__all__ = [
    "CameraExif",
    "ColmapModel",
    "FocalPrior",
    "ImageSet",
    "Scene",
    "UnreadableImageWarning",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_names",
    "detect_layout",
    "focal_prior",
    "intrinsics_groups",
    "list_images",
    "load_image_folder",
    "load_scene",
    "read_camera_exif",
    "read_image",
    "read_model",
    "read_ply",
    "read_points_ply",
    "read_transforms",
    "require_views",
    "tnt_split",
    "write_model",
    "write_ply",
    "write_points_ply",
    "write_transforms",
]
