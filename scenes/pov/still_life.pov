// still_life: a kitchen table against a tiled wall.
// Wooden table on a plank floor; a glazed teapot, a plain mug, a brass bowl with oranges and an
// apple, a granite cutting board, an opaque glass bottle, a stack of books and a salt shaker.
// Objects hide each other from the side views. Four marker beads sit on thin skewers.
// POV coordinates: y up, floor y = 0, table top y = 0.9, back wall at z = 1.6.

#include "colors.inc"
#include "textures.inc"
#include "stones.inc"
#include "woods.inc"
#include "metals.inc"
#include "common.inc"

// ---- lights: a ceiling lamp (soft) and a window-side fill, both fixed ----
light_source { <-1.2, 3.2, -1.6> color rgb <1.0, 0.96, 0.88> * 0.85 area_light <1, 0, 0>, <0, 0, 1>, 3, 3 adaptive 1 circular orient }
light_source { <3.5, 3.0, -4.5> color rgb <0.45, 0.48, 0.55> shadowless }
background { rgb <0.55, 0.55, 0.52> }  // never seen: the room is closed

// ---- room: plank floor, tiled back wall, plastered side walls with pictures ----
#declare Plank = texture {
  pigment { wood turbulence 0.08 color_map { [0 rgb <0.45, 0.3, 0.17>] [0.5 rgb <0.58, 0.4, 0.24>] [1 rgb <0.38, 0.24, 0.13>] } scale <0.08, 0.08, 1> rotate x * 2 }
  finish { ambient 0.05 diffuse 0.7 specular 0.15 roughness 0.04 }
}
box {
  <-4.6, -0.1, -6>, <4.6, 0, 1.6>
  texture {
    gradient x
    texture_map {
      [0.0 pigment { rgb <0.2, 0.13, 0.08> }]
      [0.03 pigment { rgb <0.2, 0.13, 0.08> }]
      [0.03 Plank translate <0, 0, 0.3>]
      [0.5 Plank translate <0.2, 0, 1.7>]
      [0.53 pigment { rgb <0.2, 0.13, 0.08> }]
      [0.53 Plank translate <0.5, 0, 0.9>]
      [1.0 Plank translate <0.7, 0, 2.3>]
    }
    scale 0.36
  }
}
box {
  <-4.6, 0, 1.6>, <4.6, 3.5, 1.7>
  texture {
    pigment { brick color rgb <0.85, 0.84, 0.8> color rgb <0.3, 0.45, 0.55> brick_size <0.2, 0.1, 0.2> mortar 0.008 }
    normal { brick 0.4 brick_size <0.2, 0.1, 0.2> mortar 0.008 }
    finish { ambient 0.05 diffuse 0.7 specular 0.25 roughness 0.02 }
  }
  texture {
    pigment { granite color_map { [0 rgbt <1, 1, 1, 1>] [0.7 rgbt <1, 1, 1, 1>] [1 rgbt <0.2, 0.25, 0.3, 0.4>] } scale 0.15 }
  }
}
#declare Plaster = texture {
  pigment { granite color_map { [0 rgb <0.82, 0.76, 0.64>] [1 rgb <0.66, 0.58, 0.46>] } scale 0.4 }
  normal { granite 0.2 scale 0.2 }
  finish { ambient 0.05 diffuse 0.7 }
}
#declare Wainscot = texture { T_Wood6 scale 0.5 rotate y * 90 finish { ambient 0.05 diffuse 0.7 specular 0.2 roughness 0.03 } }
#macro Side_Wall(X, Sign)
  box { <X, 0, -6>, <X + Sign * 0.1, 3.5, 1.6> texture { Plaster } }
  box { <X - Sign * 0.02, 0, -6>, <X + Sign * 0.05, 0.9, 1.6> texture { Wainscot } }
#end
Side_Wall(-4.5, -1)
Side_Wall(4.5, 1)
box { <-4.6, 0, -6.1>, <4.6, 3.5, -6> texture { Plaster } }
box { <-4.6, 3.5, -6.1>, <4.6, 3.6, 1.7> pigment { rgb 0.85 } }
#macro Picture(P, Wd, Ht, Rot, Seed)
  union {
    box { <-Wd / 2 - 0.05, -Ht / 2 - 0.05, 0>, <Wd / 2 + 0.05, Ht / 2 + 0.05, 0.03> texture { T_Wood2 scale 0.1 } }
    box {
      <-Wd / 2, -Ht / 2, -0.005>, <Wd / 2, Ht / 2, 0.03>
      pigment { bozo turbulence 0.5 color_map { [0 rgb <0.15, 0.3, 0.5>] [0.35 rgb <0.85, 0.75, 0.4>] [0.6 rgb <0.3, 0.5, 0.2>] [1 rgb <0.6, 0.25, 0.1>] } scale 0.15 translate Seed }
      finish { ambient 0.05 diffuse 0.7 }
    }
    rotate y * Rot
    translate P
  }
#end
Picture(<-4.47, 1.8, -0.5>, 1.0, 0.7, -90, <1, 2, 3>)
Picture(<-4.47, 1.7, -2.4>, 0.5, 0.7, -90, <4, 1, 7>)
Picture(<4.47, 1.75, -0.3>, 1.2, 0.8, 90, <9, 3, 2>)
Picture(<4.47, 1.9, -2.2>, 0.6, 0.5, 90, <2, 8, 5>)
Picture(<-1.8, 2.1, 1.59>, 0.8, 0.6, 0, <5, 5, 1>)

// ---- table ----
#declare Table_Wood = texture { T_Wood23 scale 0.35 rotate <2, 90, 0> finish { ambient 0.05 diffuse 0.7 specular 0.35 roughness 0.01 } }
union {
  box { <-1.3, 0.84, -0.75>, <1.3, 0.9, 0.75> }
  #for (sx, -1, 1, 2) #for (sz, -1, 1, 2)
    box { <sx * 1.15 - 0.05, 0, sz * 0.62 - 0.05>, <sx * 1.15 + 0.05, 0.84, sz * 0.62 + 0.05> }
  #end #end
  texture { Table_Wood }
}

// ---- teapot: glazed, plain colour, glossy ----
#declare Glaze = texture { pigment { rgb <0.12, 0.3, 0.55> } finish { ambient 0.03 diffuse 0.65 phong 0.8 phong_size 90 } }
union {
  sphere { <0, 0.2, 0>, 0.22 scale <1, 0.85, 1> }
  cylinder { <0, 0.3, 0>, <0, 0.36, 0>, 0.1 }
  sphere { <0, 0.39, 0>, 0.035 }
  cone { <0.15, 0.18, 0>, 0.05, <0.34, 0.32, 0>, 0.02 }
  torus { 0.09, 0.022 rotate x * 90 translate <-0.22, 0.2, 0> }
  texture { Glaze }
  rotate y * 30
  translate <-0.55, 0.9, 0.15>
}

// ---- mug: plain cream ----
union {
  difference {
    cylinder { <0, 0, 0>, <0, 0.16, 0>, 0.07 }
    cylinder { <0, 0.015, 0>, <0, 0.2, 0>, 0.06 }
  }
  torus { 0.045, 0.012 rotate x * 90 translate <0.08, 0.085, 0> }
  pigment { rgb <0.88, 0.84, 0.74> }
  finish { ambient 0.04 diffuse 0.75 phong 0.5 phong_size 60 }
  rotate y * -120
  translate <-0.1, 0.9, -0.35>
}

// ---- brass bowl with fruit ----
union {
  difference {
    sphere { 0, 0.26 }
    sphere { 0, 0.245 }
    plane { y, 0 inverse }
    scale <1, 0.6, 1>
    translate y * 0.16
    texture { T_Brass_2A }
  }
  #declare Orange = texture {
    pigment { rgb <0.85, 0.42, 0.05> }
    normal { bumps 0.5 scale 0.006 }
    finish { ambient 0.04 diffuse 0.75 specular 0.3 roughness 0.03 }
  }
  sphere { <-0.08, 0.12, 0.04>, 0.075 texture { Orange } }
  sphere { <0.09, 0.12, -0.02>, 0.072 texture { Orange } }
  sphere { <0.0, 0.14, -0.1>, 0.07 texture { Orange } }
  sphere {
    <0.02, 0.23, 0.02>, 0.075
    pigment { bozo color_map { [0 rgb <0.55, 0.7, 0.1>] [0.6 rgb <0.7, 0.5, 0.08>] [1 rgb <0.5, 0.12, 0.05>] } scale 0.03 }
    finish { ambient 0.04 diffuse 0.7 phong 0.6 phong_size 80 }
  }
  translate <0.55, 0.9, 0.25>
}

// ---- cutting board with a loaf ----
union {
  box { <-0.3, 0, -0.18>, <0.3, 0.03, 0.18> texture { T_Grnt26 scale 0.2 finish { ambient 0.04 diffuse 0.7 specular 0.4 roughness 0.01 } } }
  sphere {
    <0, 0.03, 0>, 0.15 scale <1.5, 0.6, 1>
    pigment { granite color_map { [0 rgb <0.55, 0.32, 0.12>] [1 rgb <0.8, 0.58, 0.3>] } scale 0.05 }
    normal { wrinkles 0.6 scale 0.03 }
  }
  rotate y * 12
  translate <0.2, 0.9, -0.35>
}

// ---- bottle: opaque dark glass look (no refraction) ----
union {
  cylinder { <0, 0, 0>, <0, 0.28, 0>, 0.07 }
  sphere { <0, 0.28, 0>, 0.07 scale <1, 0.6, 1> }
  cylinder { <0, 0.28, 0>, <0, 0.42, 0>, 0.025 }
  pigment { rgb <0.05, 0.22, 0.1> }
  finish { ambient 0.02 diffuse 0.5 specular 0.9 roughness 0.004 }
  translate <-0.1, 0.9, 0.45>
}
// label on the bottle
cylinder { <0, 0.08, 0>, <0, 0.2, 0>, 0.0705 pigment { checker rgb <0.9, 0.85, 0.6> rgb <0.5, 0.1, 0.1> scale 0.03 } translate <-0.1, 0.9, 0.45> }

// ---- stack of books ----
union {
  box { <-0.2, 0, -0.14>, <0.2, 0.05, 0.14> pigment { rgb <0.45, 0.12, 0.1> } }
  box { <-0.18, 0.05, -0.13>, <0.18, 0.09, 0.13> pigment { rgb <0.15, 0.3, 0.2> } rotate y * 8 }
  box { <-0.16, 0.09, -0.12>, <0.16, 0.125, 0.12> pigment { rgb <0.75, 0.65, 0.4> } rotate y * -6 }
  finish { ambient 0.04 diffuse 0.7 specular 0.1 roughness 0.1 }
  rotate y * 20
  translate <-0.95, 0.9, -0.3>
}

// ---- salt shaker ----
union {
  cylinder { <0, 0, 0>, <0, 0.1, 0>, 0.028 pigment { rgb <0.92, 0.92, 0.92> } finish { phong 0.9 } }
  sphere { <0, 0.1, 0>, 0.028 texture { T_Chrome_2A } }
  translate <0.85, 0.9, -0.35>
}

// ---- marker beads on skewers ----
#macro Skewer(P) cylinder { <P.x, 0.9, P.z>, P - <0, 0.03, 0>, 0.006 pigment { rgb <0.55, 0.45, 0.3> } } #end
Skewer(<-0.9, 1.35, 0.35>) Marker(<-0.9, 1.35, 0.35>, <1, 0, 0>)
Skewer(<0.95, 1.3, 0.5>)   Marker(<0.95, 1.3, 0.5>, <0, 1, 0>)
Skewer(<-0.45, 1.2, -0.55>) Marker(<-0.45, 1.2, -0.55>, <0, 0, 1>)
Skewer(<0.6, 1.25, -0.5>)  Marker(<0.6, 1.25, -0.5>, <1, 0, 1>)
