// demo: a sandcastle in a wooden sandbox on a lawn, a picket fence and trees behind.
// Sand with ripples, a castle of towers and walls, a glossy bucket and spade, a striped ball,
// lettered wooden blocks; the four flag-pole tips on the towers are the pose-check markers.
// POV coordinates: y up, ground y = 0, units ~ metres; the sandbox is 2.6 m square.

#include "colors.inc"
#include "textures.inc"
#include "stones.inc"
#include "woods.inc"
#include "metals.inc"
#include "common.inc"

light_source { <-20, 35, -25> color rgb <1.0, 0.96, 0.88> * 1.0 area_light <2, 0, 0>, <0, 0, 2>, 3, 3 adaptive 1 circular orient }
light_source { <20, 15, -15> color rgb <0.35, 0.4, 0.5> shadowless }

sky_sphere {
  pigment { gradient y color_map { [0.0 rgb <0.85, 0.88, 0.92>] [0.3 rgb <0.45, 0.62, 0.9>] [1.0 rgb <0.25, 0.4, 0.8>] } }
  pigment {
    bozo turbulence 0.6 octaves 5
    color_map { [0.0 rgbt <1, 1, 1, 1>] [0.5 rgbt <1, 1, 1, 1>] [0.75 rgbt <1, 1, 1, 0.3>] [1.0 rgbt <0.9, 0.9, 0.92, 0.1>] }
    scale <0.3, 0.1, 0.3>
  }
}

// ---- lawn ----
plane {
  y, 0
  pigment { granite turbulence 0.3 color_map { [0 rgb <0.1, 0.22, 0.05>] [0.5 rgb <0.22, 0.4, 0.1>] [1 rgb <0.4, 0.55, 0.18>] } scale 0.15 }
  normal { bumps 0.6 scale 0.03 }
  finish { ambient 0.05 diffuse 0.75 }
}

// ---- sandbox ----
#declare Sand = texture {
  pigment { granite color_map { [0 rgb <0.62, 0.52, 0.34>] [0.6 rgb <0.78, 0.68, 0.48>] [1 rgb <0.9, 0.82, 0.62>] } scale 0.05 }
  normal { average normal_map { [1 ripples 0.4 scale 0.3 translate <0.3, 0, 0.2>] [1 bumps 0.5 scale 0.01] } }
  finish { ambient 0.05 diffuse 0.75 }
}
#declare Frame_Wood = texture { T_Wood9 scale 0.2 rotate y * 90 finish { ambient 0.05 diffuse 0.7 specular 0.2 roughness 0.03 } }
box { <-1.3, 0, -1.3>, <1.3, 0.1, 1.3> texture { Sand } }
union {
  box { <-1.4, 0, -1.4>, <1.4, 0.2, -1.3> }
  box { <-1.4, 0, 1.3>, <1.4, 0.2, 1.4> }
  box { <-1.4, 0, -1.3>, <-1.3, 0.2, 1.3> }
  box { <1.3, 0, -1.3>, <1.4, 0.2, 1.3> }
  texture { Frame_Wood }
}

// ---- sandcastle ----
#declare Wet_Sand = texture {
  pigment { granite color_map { [0 rgb <0.5, 0.4, 0.25>] [1 rgb <0.75, 0.62, 0.42>] } scale 0.03 }
  normal { bumps 0.4 scale 0.008 }
  finish { ambient 0.05 diffuse 0.75 }
}
#macro Tower(P, R, H)
  union {
    cylinder { <0, 0, 0>, <0, H, 0>, R }
    difference {
      cylinder { <0, H, 0>, <0, H + 0.06, 0>, R * 1.15 }
      cylinder { <0, H + 0.02, 0>, <0, H + 0.1, 0>, R * 0.85 }
      #for (k, 0, 5)
        box { <-0.02, H + 0.03, -R * 1.3>, <0.02, H + 0.1, R * 1.3> rotate y * k * 30 }
      #end
    }
    translate P
  }
#end
union {
  Tower(<-0.3, 0.1, -0.3>, 0.12, 0.45)
  Tower(<0.3, 0.1, -0.3>, 0.12, 0.5)
  Tower(<-0.3, 0.1, 0.3>, 0.12, 0.55)
  Tower(<0.3, 0.1, 0.3>, 0.12, 0.4)
  cone { <0, 0.1, 0>, 0.32, <0, 0.6, 0>, 0.07 }
  box { <-0.3, 0.1, -0.33>, <0.3, 0.35, -0.27> }
  box { <-0.3, 0.1, 0.27>, <0.3, 0.35, 0.33> }
  box { <-0.33, 0.1, -0.3>, <-0.27, 0.35, 0.3> }
  box { <0.27, 0.1, -0.3>, <0.33, 0.35, 0.3> }
  texture { Wet_Sand }
  translate <0.1, 0, 0.15>
}
// door and windows (dark holes)
box { <-0.07, 0.1, -0.34>, <0.07, 0.26, -0.3> pigment { rgb <0.1, 0.07, 0.04> } translate <0.1, 0, 0.15> }

// ---- bucket (glossy plastic) and spade ----
union {
  difference {
    cone { <0, 0, 0>, 0.11, <0, 0.22, 0>, 0.14 }
    cone { <0, 0.02, 0>, 0.1, <0, 0.23, 0>, 0.13 }
  }
  torus { 0.14, 0.008 translate y * 0.22 }
  pigment { rgb <0.9, 0.7, 0.05> }
  finish { ambient 0.04 diffuse 0.7 phong 0.8 phong_size 80 }
  rotate z * -8
  translate <-0.75, 0.1, -0.45>
}
union {
  cylinder { <0, 0, 0>, <0, 0.4, 0>, 0.012 pigment { rgb <0.1, 0.35, 0.75> } }
  box { <-0.06, -0.14, -0.005>, <0.06, 0, 0.005> pigment { rgb <0.1, 0.35, 0.75> } }
  finish { phong 0.7 phong_size 60 }
  rotate z * 70
  rotate y * 30
  translate <0.7, 0.12, -0.55>
}

// ---- striped ball (plain surfaces, glossy) ----
sphere {
  <0, 0, 0>, 0.16
  pigment { gradient y color_map { [0.0 rgb <0.95, 0.95, 0.9>] [0.33 rgb <0.95, 0.95, 0.9>] [0.33 rgb <0.2, 0.45, 0.85>] [0.66 rgb <0.2, 0.45, 0.85>] [0.66 rgb <0.95, 0.6, 0.1>] [1.0 rgb <0.95, 0.6, 0.1>] } scale 0.2 rotate <30, 0, 20> }
  finish { ambient 0.04 diffuse 0.7 phong 0.7 phong_size 70 }
  translate <0.75, 0.26, 0.65>
}

// ---- lettered wooden blocks ----
#macro Block(P, Rot, Letter, Col)
  union {
    box { <-0.07, 0, -0.07>, <0.07, 0.14, 0.07> texture { T_Wood35 scale 0.08 finish { ambient 0.05 diffuse 0.7 specular 0.2 roughness 0.04 } } }
    text { ttf "timrom.ttf" Letter 0.02, 0 scale 0.11 translate <-0.035, 0.03, -0.075> pigment { rgb Col } }
    text { ttf "timrom.ttf" Letter 0.02, 0 scale 0.11 translate <-0.035, 0.03, -0.075> pigment { rgb Col } rotate y * 90 }
    text { ttf "timrom.ttf" Letter 0.02, 0 scale 0.11 translate <-0.035, 0.03, -0.075> pigment { rgb Col } rotate y * -90 }
    rotate y * Rot
    translate P
  }
#end
Block(<-0.7, 0.1, 0.35>, 15, "S", <0.1, 0.3, 0.6>)
Block(<-0.55, 0.1, 0.55>, -20, "P", <0.6, 0.1, 0.1>)
Block(<-0.62, 0.24, 0.43>, 40, "L", <0.1, 0.45, 0.15>)
Block(<-0.1, 0.1, -0.75>, 5, "A", <0.55, 0.2, 0.5>)

// ---- picket fence and trees behind (+z) ----
union {
  #for (k, -20, 20)
    box { <k * 0.16 - 0.05, 0, 2.4>, <k * 0.16 + 0.05, 0.7, 2.43> }
    box { <k * 0.16 - 0.035, 0.7, 2.4>, <k * 0.16 + 0.035, 0.75, 2.43> }
  #end
  box { <-3.3, 0.15, 2.43>, <3.3, 0.22, 2.47> }
  box { <-3.3, 0.5, 2.43>, <3.3, 0.57, 2.47> }
  texture { T_Wood31 scale 0.2 finish { ambient 0.06 diffuse 0.75 } }
}
#macro Tree(P, H)
  union {
    cylinder { <0, 0, 0>, <0, H * 0.5, 0>, H * 0.05 texture { T_Wood4 scale 0.1 rotate x * 90 } }
    sphere {
      <0, H * 0.75, 0>, H * 0.3
      pigment { granite color_map { [0 rgb <0.05, 0.18, 0.04>] [0.6 rgb <0.15, 0.38, 0.08>] [1 rgb <0.4, 0.55, 0.15>] } scale 0.2 }
      normal { bumps 1.0 scale 0.06 }
    }
    translate P
  }
#end
Tree(<-2.2, 0, 3.4>, 2.6)
Tree(<0.6, 0, 4.0>, 3.2)
Tree(<2.8, 0, 3.2>, 2.4)
Tree(<-3.8, 0, 1.0>, 2.2)
Tree(<3.9, 0, 0.6>, 2.5)

// ---- flag poles on the four towers; their tips are the markers ----
#macro Flag_Pole(P) cylinder { <P.x, 0.5, P.z>, P - <0, 0.03, 0>, 0.006 pigment { rgb 0.2 } } #end
Flag_Pole(<-0.2, 0.78, -0.15>) Marker(<-0.2, 0.78, -0.15>, <1, 0, 0>)
Flag_Pole(<0.4, 0.76, -0.15>)  Marker(<0.4, 0.76, -0.15>, <0, 1, 0>)
Flag_Pole(<-0.2, 0.88, 0.45>)  Marker(<-0.2, 0.88, 0.45>, <0, 0, 1>)
Flag_Pole(<0.4, 1.0, 0.45>)    Marker(<0.4, 1.0, 0.45>, <1, 0, 1>)
