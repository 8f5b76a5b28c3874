// statues: a small sculpture court on marble paving, closed behind by a curved stone wall.
// A marble bust on a plinth, a wooden totem, a fluted granite column, a bronze orb, a granite
// obelisk and a low wooden bench; soft sun and a cloudy sky. Markers: gems on four bronze rods.
// POV coordinates: y up, ground y = 0, units ~ metres; the court is a 7.5 m disc.

#include "colors.inc"
#include "textures.inc"
#include "stones.inc"
#include "woods.inc"
#include "metals.inc"
#include "common.inc"

light_source { <25, 40, -30> color rgb <1.0, 0.95, 0.85> * 1.0 area_light <2.5, 0, 0>, <0, 0, 2.5>, 3, 3 adaptive 1 circular orient }
light_source { <-30, 25, -10> color rgb <0.35, 0.4, 0.5> shadowless }

sky_sphere {
  pigment { gradient y color_map { [0.0 rgb <0.8, 0.78, 0.75>] [0.3 rgb <0.45, 0.55, 0.8>] [1.0 rgb <0.25, 0.35, 0.7>] } }
  pigment {
    granite turbulence 0.3
    color_map { [0.0 rgbt <1, 1, 1, 1>] [0.5 rgbt <1, 1, 1, 1>] [0.8 rgbt <0.95, 0.93, 0.9, 0.3>] [1.0 rgbt <0.8, 0.8, 0.82, 0.1>] }
    scale <0.6, 0.15, 0.6>
  }
}

// ---- paving: marble and slate slabs, rotated 45 degrees ----
cylinder {
  <0, -0.2, 0>, <0, 0, 0>, 7.5
  texture {
    checker
      texture { White_Marble scale 0.5 finish { ambient 0.05 diffuse 0.75 specular 0.2 roughness 0.02 } }
      texture { T_Stone10 scale 0.6 finish { ambient 0.05 diffuse 0.75 specular 0.2 roughness 0.02 } }
    scale 1.1
    rotate y * 45
  }
}
plane { y, -0.01 pigment { rgb <0.35, 0.33, 0.3> } }

// ---- curved stone wall behind (open towards -z, where the cameras are) ----
difference {
  cylinder { <0, 0, 0>, <0, 2.6, 0>, 7.8 }
  cylinder { <0, -1, 0>, <0, 3, 0>, 7.2 }
  plane { z, -5.0 }
  pigment {
    brick
      pigment { rgb <0.3, 0.28, 0.25> }
      pigment { granite turbulence 0.3 color_map { [0 rgb <0.62, 0.56, 0.45>] [0.5 rgb <0.5, 0.46, 0.38>] [1 rgb <0.32, 0.3, 0.26>] } scale 0.3 }
    brick_size <0.7, 0.35, 0.7>
    mortar 0.03
  }
  normal { granite 0.3 scale 0.2 }
  finish { ambient 0.05 diffuse 0.75 }
}
difference {
  cylinder { <0, 2.6, 0>, <0, 2.8, 0>, 7.9 }
  cylinder { <0, 2, 0>, <0, 3, 0>, 7.1 }
  plane { z, -5.0 }
  texture { T_Grnt20 scale 0.6 }
}

// ---- marble bust on a plinth (centre) ----
#declare Marble = texture { White_Marble scale 0.3 finish { ambient 0.05 diffuse 0.7 phong 0.35 phong_size 40 } }
union {
  box { <-0.35, 0, -0.35>, <0.35, 1.0, 0.35> texture { T_Stone9 scale 0.5 } }
  box { <-0.4, 1.0, -0.4>, <0.4, 1.06, 0.4> texture { T_Grnt14 scale 0.3 } }
  union {
    sphere { <0, 1.25, 0>, 0.3 scale <1.3, 0.7, 0.8> translate y * 0.4 }
    cylinder { <0, 1.3, 0>, <0, 1.55, 0>, 0.1 }
    sphere { <0, 1.72, 0>, 0.19 scale <0.95, 1.15, 1> translate y * -0.2 }
    cone { <0, 1.73, -0.16>, 0.04, <0, 1.68, -0.23>, 0.005 }
    texture { Marble }
  }
  rotate y * -20
  translate <0, 0, 0.4>
}

// ---- wooden totem (left) ----
union {
  box { <-0.25, 0, -0.25>, <0.25, 0.5, 0.25> texture { T_Wood3 scale 0.3 rotate x * 90 } }
  cylinder { <0, 0.5, 0>, <0, 0.95, 0>, 0.2 texture { T_Wood12 scale 0.2 rotate x * 90 } }
  sphere { <0, 1.15, 0>, 0.22 texture { T_Wood1 scale 0.25 } }
  cone { <0, 1.33, 0>, 0.18, <0, 1.75, 0>, 0.0 texture { T_Wood18 scale 0.2 rotate x * 90 } }
  finish { ambient 0.05 diffuse 0.7 specular 0.25 roughness 0.03 }
  rotate y * 30
  translate <-2.0, 0, 1.1>
}

// ---- fluted granite column (right back) ----
union {
  difference {
    cylinder { <0, 0.15, 0>, <0, 2.0, 0>, 0.28 }
    #for (k, 0, 11)
      cylinder { <0.29, 0.3, 0>, <0.29, 1.85, 0>, 0.045 rotate y * k * 30 }
    #end
  }
  box { <-0.36, 0, -0.36>, <0.36, 0.15, 0.36> }
  box { <-0.34, 2.0, -0.34>, <0.34, 2.12, 0.34> }
  texture { T_Grnt12 scale 0.4 finish { ambient 0.05 diffuse 0.7 specular 0.3 roughness 0.02 } }
  translate <1.8, 0, 1.5>
}

// ---- bronze orb on a low drum (right front) ----
union {
  cylinder { <0, 0, 0>, <0, 0.45, 0>, 0.32 texture { T_Stone19 scale 0.4 } }
  sphere { <0, 0.72, 0>, 0.28 texture { T_Copper_3A } }
  translate <1.5, 0, -0.8>
}

// ---- granite obelisk (left back) ----
union {
  box { <-0.22, 0, -0.22>, <0.22, 1.6, 0.22> }
  intersection {
    box { <-0.22, 1.6, -0.22>, <0.22, 1.85, 0.22> }
    plane { <1, 0.85, 0>, 0 translate <0.22, 1.6, 0> }
    plane { <-1, 0.85, 0>, 0 translate <-0.22, 1.6, 0> }
    plane { <0, 0.85, 1>, 0 translate <0, 1.6, 0.22> }
    plane { <0, 0.85, -1>, 0 translate <0, 1.6, -0.22> }
  }
  texture { T_Grnt27 scale 0.4 finish { ambient 0.05 diffuse 0.7 specular 0.4 roughness 0.01 } }
  rotate y * 15
  translate <-0.5, 0, 2.6>
}

// ---- low wooden bench and a stone block (front left) ----
union {
  box { <-0.7, 0.35, -0.18>, <0.7, 0.42, 0.18> texture { T_Wood15 scale 0.3 rotate y * 90 } }
  box { <-0.6, 0, -0.15>, <-0.5, 0.35, 0.15> texture { T_Wood15 scale 0.3 } }
  box { <0.5, 0, -0.15>, <0.6, 0.35, 0.15> texture { T_Wood15 scale 0.3 } }
  rotate y * -30
  translate <-1.6, 0, -1.2>
}
box { <-0.3, 0, -0.25>, <0.3, 0.35, 0.25> rotate y * 20 translate <0.3, 0, -1.6> texture { T_Stone2 scale 0.4 } }

// ---- marker gems on bronze rods ----
#macro Rod(P) cylinder { <P.x, 0, P.z>, P - <0, 0.03, 0>, 0.02 texture { T_Brass_4A } } #end
Rod(<-1.2, 2.0, 1.9>)  Marker(<-1.2, 2.0, 1.9>, <1, 0, 0>)
Rod(<1.0, 2.3, 2.2>)   Marker(<1.0, 2.3, 2.2>, <0, 1, 0>)
Rod(<-1.0, 1.45, -0.5>) Marker(<-1.0, 1.45, -0.5>, <0, 0, 1>)
Rod(<0.9, 1.6, -0.2>)  Marker(<0.9, 1.6, -0.2>, <1, 0, 1>)
