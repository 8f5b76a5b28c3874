// tablecloth: a table under a high-contrast gingham cloth with a striped runner, in a tiled room.
// Built to be dominated by repeated texture (issue #20): the cloth, the checkered floor and the
// tiled walls fill most of every view. Only four small objects carry unique texture: a painted
// vase, a book with a marbled cover, a wooden bowl with fruit and a candle on a brass stick.
// Markers: beads on four thin dark rods standing on the cloth.
// POV coordinates: y up, floor y = 0, cloth top y = 0.915, back wall at z = 2.6.

#include "colors.inc"
#include "textures.inc"
#include "stones.inc"
#include "woods.inc"
#include "metals.inc"
#include "common.inc"

// ---- lights: a soft ceiling lamp and a dim fill, both fixed in the world ----
light_source { <-0.8, 3.0, -1.2> color rgb <1.0, 0.97, 0.9> * 0.9 area_light <1, 0, 0>, <0, 0, 1>, 3, 3 adaptive 1 circular orient }
light_source { <3.0, 2.6, -3.5> color rgb <0.42, 0.44, 0.5> shadowless }
background { rgb <0.5, 0.5, 0.5> }  // never seen: the room is closed

// ---- floor: black and white checkered tiles with grout lines ----
#declare Grout_Grid = pigment {
  gradient x
  color_map { [0 rgbt <0.4, 0.4, 0.38, 0>] [0.03 rgbt <0.4, 0.4, 0.38, 0>] [0.03 rgbt 1] [1 rgbt 1] }
}
box {
  <-4.6, -0.1, -5.0>, <4.6, 0, 2.6>
  texture {
    pigment { checker rgb <0.82, 0.8, 0.76> rgb <0.07, 0.07, 0.08> }
    finish { ambient 0.04 diffuse 0.7 specular 0.3 roughness 0.02 }
    scale 0.4
  }
  texture { pigment { Grout_Grid } scale 0.4 }
  texture { pigment { Grout_Grid } rotate y * 90 scale 0.4 }
}

// ---- walls: small square glazed tiles in two alternating tones, dark grout ----
#declare Wall_Tiles = texture {
  pigment { checker rgb <0.78, 0.8, 0.74> rgb <0.33, 0.45, 0.48> }
  finish { ambient 0.04 diffuse 0.7 specular 0.3 roughness 0.015 }
  scale 0.15
}
#macro Tiled_Wall(Lo, Hi, Turn)
  box {
    Lo, Hi
    texture { Wall_Tiles rotate y * Turn }
    texture { pigment { Grout_Grid } scale 0.15 rotate y * Turn }
    texture { pigment { gradient y color_map { [0 rgbt <0.25, 0.25, 0.24, 0>] [0.05 rgbt <0.25, 0.25, 0.24, 0>] [0.05 rgbt 1] [1 rgbt 1] } } scale 0.15 }
  }
#end
Tiled_Wall(<-4.6, 0, 2.6>, <4.6, 3.2, 2.7>, 0)
Tiled_Wall(<-4.6, 0, -5.1>, <4.6, 3.2, -5.0>, 0)
Tiled_Wall(<-4.7, 0, -5.1>, <-4.6, 3.2, 2.7>, 90)
Tiled_Wall(<4.6, 0, -5.1>, <4.7, 3.2, 2.7>, 90)
box { <-4.7, 3.2, -5.1>, <4.7, 3.3, 2.7> pigment { rgb 0.85 } }

// ---- table: wooden legs showing below the cloth ----
union {
  box { <-1.2, 0.84, -0.8>, <1.2, 0.9, 0.8> }
  #for (sx, -1, 1, 2) #for (sz, -1, 1, 2)
    box { <sx * 1.08 - 0.05, 0, sz * 0.68 - 0.05>, <sx * 1.08 + 0.05, 0.84, sz * 0.68 + 0.05> }
  #end #end
  texture { T_Wood23 scale 0.3 rotate <2, 90, 0> finish { ambient 0.05 diffuse 0.7 specular 0.3 roughness 0.02 } }
}

// ---- gingham cloth: navy and white checks (5 cm bands), pattern in the local x-y plane ----
#declare Cloth_Light = rgb <0.9, 0.9, 0.86>;
#declare Cloth_Mid = rgb <0.38, 0.42, 0.6>;
#declare Cloth_Dark = rgb <0.04, 0.06, 0.2>;
#declare Gingham = texture {
  pigment {
    gradient x
    pigment_map {
      [0.0 gradient y color_map { [0 Cloth_Light] [0.5 Cloth_Light] [0.5 Cloth_Mid] [1 Cloth_Mid] }]
      [0.5 gradient y color_map { [0 Cloth_Light] [0.5 Cloth_Light] [0.5 Cloth_Mid] [1 Cloth_Mid] }]
      [0.5 gradient y color_map { [0 Cloth_Mid] [0.5 Cloth_Mid] [0.5 Cloth_Dark] [1 Cloth_Dark] }]
      [1.0 gradient y color_map { [0 Cloth_Mid] [0.5 Cloth_Mid] [0.5 Cloth_Dark] [1 Cloth_Dark] }]
    }
    scale 0.1
  }
  finish { ambient 0.04 diffuse 0.75 }
}
union {
  box { <-1.3, 0.9, -0.9>, <1.3, 0.912, 0.9> texture { Gingham rotate x * 90 } }
  box { <-1.3, 0.28, -0.912>, <1.3, 0.912, -0.9> texture { Gingham translate y * 0.012 } }
  box { <-1.3, 0.28, 0.9>, <1.3, 0.912, 0.912> texture { Gingham translate y * 0.012 } }
  box { <-1.312, 0.28, -0.912>, <-1.3, 0.912, 0.912> texture { Gingham translate y * 0.012 rotate y * 90 } }
  box { <1.3, 0.28, -0.912>, <1.312, 0.912, 0.912> texture { Gingham translate y * 0.012 rotate y * 90 } }
}

// ---- runner: cream and terracotta stripes across, along the middle of the table ----
box {
  <-1.312, 0.912, -0.24>, <1.312, 0.915, 0.24>
  pigment { gradient x color_map { [0 rgb <0.86, 0.8, 0.66>] [0.5 rgb <0.86, 0.8, 0.66>] [0.5 rgb <0.55, 0.24, 0.12>] [1 rgb <0.55, 0.24, 0.12>] } scale 0.08 }
  finish { ambient 0.04 diffuse 0.75 }
}
box { <-1.315, 0.6, -0.24>, <-1.312, 0.915, 0.24> pigment { rgb <0.55, 0.24, 0.12> } }
box { <1.312, 0.6, -0.24>, <1.315, 0.915, 0.24> pigment { rgb <0.55, 0.24, 0.12> } }

// ---- objects: the only unique texture ----
// vase: painted glaze, glossy
sor {
  7, <0.0, -0.05>, <0.09, 0.0>, <0.12, 0.1>, <0.07, 0.24>, <0.05, 0.3>, <0.07, 0.34>, <0.07, 0.4>
  open
  pigment { bozo turbulence 0.6 color_map { [0 rgb <0.12, 0.22, 0.45>] [0.35 rgb <0.85, 0.7, 0.35>] [0.65 rgb <0.55, 0.2, 0.1>] [1 rgb <0.2, 0.4, 0.25>] } scale 0.04 }
  finish { ambient 0.03 diffuse 0.65 phong 0.7 phong_size 80 }
  translate <-0.6, 0.915, 0.35>
}
disc { <-0.6, 0.915 + 0.32, 0.35>, y, 0.06 pigment { rgb 0.08 } }  // dark inside, below the rim

// book: marbled cover, cream pages
union {
  box { <-0.16, 0, -0.11>, <0.16, 0.045, 0.11> pigment { granite turbulence 0.4 color_map { [0 rgb <0.5, 0.15, 0.12>] [0.4 rgb <0.8, 0.65, 0.3>] [0.7 rgb <0.15, 0.3, 0.25>] [1 rgb <0.1, 0.1, 0.2>] } scale 0.12 } }
  box { <-0.155, 0.005, -0.115>, <0.15, 0.04, 0.105> pigment { gradient y color_map { [0 rgb <0.9, 0.86, 0.74>] [0.8 rgb <0.9, 0.86, 0.74>] [0.8 rgb <0.6, 0.56, 0.48>] [1 rgb <0.6, 0.56, 0.48>] } scale 0.004 } translate <0.008, 0, 0> }
  finish { ambient 0.04 diffuse 0.7 specular 0.15 roughness 0.05 }
  rotate y * 28
  translate <0.65, 0.915, -0.4>
}

// wooden bowl with fruit
union {
  difference {
    sphere { 0, 0.2 }
    sphere { 0, 0.185 }
    plane { y, 0 inverse }
    scale <1, 0.55, 1>
    translate y * 0.11
    texture { T_Wood10 scale 0.08 finish { ambient 0.04 diffuse 0.7 specular 0.4 roughness 0.02 } }
  }
  #declare Orange = texture {
    pigment { rgb <0.85, 0.45, 0.08> }
    normal { bumps 0.5 scale 0.006 }
    finish { ambient 0.04 diffuse 0.75 specular 0.3 roughness 0.03 }
  }
  sphere { <-0.06, 0.09, 0.03>, 0.065 texture { Orange } }
  sphere { <0.07, 0.09, -0.02>, 0.062 texture { Orange } }
  sphere {
    <0.0, 0.16, 0.0>, 0.065
    pigment { bozo color_map { [0 rgb <0.55, 0.7, 0.1>] [0.6 rgb <0.7, 0.5, 0.08>] [1 rgb <0.5, 0.14, 0.06>] } scale 0.025 }
    finish { ambient 0.04 diffuse 0.7 phong 0.6 phong_size 80 }
  }
  translate <0.45, 0.915, 0.4>
}

// candle on a brass stick (the flame is a small self-lit cone)
union {
  cylinder { <0, 0, 0>, <0, 0.015, 0>, 0.07 texture { T_Brass_2A } }
  cylinder { <0, 0.015, 0>, <0, 0.12, 0>, 0.014 texture { T_Brass_2A } }
  cylinder { <0, 0.12, 0>, <0, 0.13, 0>, 0.04 texture { T_Brass_2A } }
  cylinder {
    <0, 0.13, 0>, <0, 0.32, 0>, 0.025
    pigment { granite turbulence 0.5 color_map { [0 rgb <0.92, 0.88, 0.78>] [0.6 rgb <0.85, 0.72, 0.55>] [1 rgb <0.5, 0.35, 0.3>] } scale 0.03 }
    finish { ambient 0.04 diffuse 0.75 phong 0.3 }
  }
  cone { <0, 0.32, 0>, 0.008, <0, 0.36, 0>, 0 pigment { rgb <1, 0.85, 0.5> } finish { ambient 0 diffuse 0 emission 1 } no_shadow }
  translate <-0.35, 0.915, -0.4>
}

// ---- marker beads on thin dark rods standing on the cloth ----
#macro Rod(P) cylinder { <P.x, 0.915, P.z>, P - <0, 0.03, 0>, 0.006 pigment { rgb <0.1, 0.1, 0.1> } } #end
Rod(<-0.95, 1.35, 0.6>) Marker(<-0.95, 1.35, 0.6>, <1, 0, 0>)
Rod(<1.0, 1.3, 0.55>)   Marker(<1.0, 1.3, 0.55>, <0, 1, 0>)
Rod(<-0.85, 1.2, -0.6>) Marker(<-0.85, 1.2, -0.6>, <0, 0, 1>)
Rod(<0.95, 1.25, -0.65>) Marker(<0.95, 1.25, -0.65>, <1, 0, 1>)
