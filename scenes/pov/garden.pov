// garden: a paved round garden enclosed by a hedge, under a cloudy sky.
// Stone birdbath, a wooden planter with a shrub, a brass ball on a plinth, terracotta pots,
// a bench, boulders, and four lamp posts whose bulbs are the pose-check markers.
// POV coordinates: y up, ground y = 0, units ~ metres, everything within 7 m of the origin.

#include "colors.inc"
#include "textures.inc"
#include "stones.inc"
#include "woods.inc"
#include "metals.inc"
#include "common.inc"

// ---- light and sky (fixed in the world) ----
light_source { <-30, 45, -20> color rgb <1.0, 0.97, 0.9> * 1.05 area_light <3, 0, 0>, <0, 0, 3>, 3, 3 adaptive 1 circular orient }
light_source { <25, 20, 30> color rgb <0.45, 0.5, 0.6> shadowless }

sky_sphere {
  pigment { gradient y color_map { [0.0 rgb <0.75, 0.82, 0.92>] [0.35 rgb <0.32, 0.5, 0.85>] [1.0 rgb <0.2, 0.35, 0.75>] } }
  pigment {
    bozo turbulence 0.7 octaves 6 omega 0.6 lambda 2.2
    color_map { [0.0 rgbt <1, 1, 1, 1>] [0.45 rgbt <1, 1, 1, 1>] [0.7 rgbt <0.97, 0.97, 1, 0.25>] [1.0 rgbt <0.85, 0.86, 0.9, 0.1>] }
    scale <0.25, 0.08, 0.25>
  }
}

// ---- ground: stone paving inside, lawn under the hedge ----
cylinder {
  <0, -0.2, 0>, <0, 0, 0>, 7.5
  texture {
    checker
      texture { T_Stone8 scale 0.6 finish { ambient 0.05 diffuse 0.8 } }
      texture { T_Grnt23 scale 0.8 finish { ambient 0.05 diffuse 0.8 } }
    scale 0.8
  }
}
plane { y, -0.01 pigment { granite color_map { [0 rgb <0.12, 0.25, 0.08>] [1 rgb <0.3, 0.45, 0.15>] } scale 0.3 } }

// ---- hedge ring ----
#declare Leaves = texture {
  pigment { granite turbulence 0.4 color_map { [0.0 rgb <0.05, 0.16, 0.04>] [0.5 rgb <0.15, 0.35, 0.08>] [1.0 rgb <0.35, 0.55, 0.15>] } scale 0.35 }
  normal { bumps 1.2 scale 0.08 }
  finish { ambient 0.05 diffuse 0.75 }
}
difference {
  cylinder { <0, 0, 0>, <0, 1.6, 0>, 9.0 }
  cylinder { <0, -1, 0>, <0, 2, 0>, 8.0 }
  texture { Leaves }
}
torus { 8.5, 0.5 translate y * 1.6 texture { Leaves } }

// ---- birdbath (centre) ----
union {
  cylinder { <0, 0, 0>, <0, 0.12, 0>, 0.45 }
  cone { <0, 0.12, 0>, 0.22, <0, 0.75, 0>, 0.13 }
  difference {
    sphere { <0, 0, 0>, 0.6 scale <1, 0.45, 1> }
    sphere { <0, 0.06, 0>, 0.52 scale <1, 0.42, 1> }
    plane { -y, 0 }
    translate y * 0.78
  }
  texture { T_Stone21 scale 0.5 finish { ambient 0.05 diffuse 0.75 specular 0.15 roughness 0.05 } }
  translate <0, 0, 0.3>
}
cylinder { <0, 0.79, 0.3>, <0, 0.8, 0.3>, 0.5 pigment { rgb <0.25, 0.38, 0.42> } finish { specular 0.6 roughness 0.01 } }

// ---- wooden planter with a shrub (left back) ----
union {
  difference {
    box { <-0.55, 0, -0.55>, <0.55, 0.6, 0.55> }
    box { <-0.48, 0.1, -0.48>, <0.48, 0.7, 0.48> }
    texture { T_Wood10 scale 0.3 rotate <5, 80, 0> finish { ambient 0.05 diffuse 0.7 specular 0.2 roughness 0.03 } }
  }
  box { <-0.48, 0, -0.48>, <0.48, 0.52, 0.48> pigment { granite color_map { [0 rgb <0.12, 0.08, 0.05>] [1 rgb <0.3, 0.2, 0.12>] } scale 0.1 } }
  union {
    sphere { <0, 0.95, 0>, 0.45 scale <1, 1.3, 1> }
    sphere { <0.12, 1.35, 0.05>, 0.3 }
    texture { Leaves scale 0.6 }
  }
  rotate y * 25
  translate <-1.8, 0, 1.2>
}

// ---- brass ball on a granite plinth (right front) ----
union {
  box { <-0.3, 0, -0.3>, <0.3, 0.7, 0.3> texture { T_Grnt18 scale 0.5 finish { ambient 0.05 diffuse 0.7 specular 0.3 roughness 0.02 } } }
  sphere { <0, 0.98, 0>, 0.28 texture { T_Brass_3A } }
  rotate y * -15
  translate <1.5, 0, -0.6>
}

// ---- terracotta pots (plain, slightly glossy) ----
#macro Pot(R, H)
  difference {
    cone { <0, 0, 0>, R * 0.75, <0, H, 0>, R }
    cone { <0, 0.05, 0>, R * 0.65, <0, H + 0.01, 0>, R * 0.9 }
    pigment { rgb <0.62, 0.3, 0.16> }
    finish { ambient 0.05 diffuse 0.75 phong 0.4 phong_size 30 }
  }
  torus { R, 0.03 translate y * H pigment { rgb <0.58, 0.28, 0.15> } finish { phong 0.4 } }
  cylinder { <0, 0.02, 0>, <0, H - 0.03, 0>, R * 0.85 pigment { rgb <0.15, 0.1, 0.07> } }
#end
union { Pot(0.28, 0.5) translate <0.9, 0, 1.6> }
union { Pot(0.2, 0.36) translate <1.4, 0, 1.25> }
union { Pot(0.16, 0.3) translate <-0.6, 0, -1.4> }

// ---- bench (back) ----
union {
  #for (i, 0, 3)
    box { <-0.9, 0.42, -0.22 + i * 0.12>, <0.9, 0.46, -0.13 + i * 0.12> texture { T_Wood7 scale 0.4 rotate <0, 90, 3> finish { specular 0.15 roughness 0.05 } } }
  #end
  box { <-0.85, 0, -0.22>, <-0.7, 0.42, 0.2> texture { T_Stone24 scale 0.4 } }
  box { <0.7, 0, -0.22>, <0.85, 0.42, 0.2> texture { T_Stone24 scale 0.4 } }
  rotate y * -8
  translate <0.3, 0, 2.6>
}

// ---- boulders ----
sphere { 0, 0.35 scale <1.2, 0.7, 1> rotate y * 30 translate <-1.3, 0.1, -0.6> texture { T_Stone17 scale 0.4 } }
sphere { 0, 0.22 scale <1, 0.8, 1.3> translate <-0.9, 0.08, -0.9> texture { T_Grnt11 scale 0.4 } }
sphere { 0, 0.25 scale <1.3, 0.7, 1> translate <2.3, 0.08, 0.8> texture { T_Stone13 scale 0.4 } }

// ---- lamp posts with marker bulbs ----
Marker_Post(<-1.0, 1.85, 1.9>, 0.02) Marker(<-1.0, 1.85, 1.9>, <1, 0, 0>)
Marker_Post(<1.5, 1.55, 1.7>, 0.02)  Marker(<1.5, 1.55, 1.7>, <0, 1, 0>)
Marker_Post(<-1.1, 1.2, -0.9>, 0.02) Marker(<-1.1, 1.2, -0.9>, <0, 0, 1>)
Marker_Post(<0.7, 1.45, -1.3>, 0.02)  Marker(<0.7, 1.45, -1.3>, <1, 0, 1>)
