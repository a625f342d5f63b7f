"""A self-contained HTML page that shows a mesh in 3D (WebGL, no library, no network): the mesh's
positions, normals, colours and triangles are embedded in the page as base64, so the page works
when opened from disk. Drag to orbit, wheel to zoom."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import numpy as np
import trimesh

from difforge.core.errors import UserError
from difforge.core.io import atomic_path

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>body{margin:0;background:#f6f5f1;font:14px sans-serif}canvas{width:100vw;height:100vh;
display:block}#c{position:fixed;left:8px;bottom:8px;background:#fffc;padding:4px 8px}</style>
</head><body><canvas id="v"></canvas><div id="c">__CAPTION__ (drag: orbit, wheel: zoom)</div>
<script>
const D={p:"__P__",n:"__N__",c:"__C__",i:"__I__",lo:__LO__,hi:__HI__};
function buf(s,T){const b=atob(s),u=new Uint8Array(b.length);
for(let k=0;k<b.length;k++)u[k]=b.charCodeAt(k);return new T(u.buffer);}
const cv=document.getElementById("v"),gl=cv.getContext("webgl");
if(!gl.getExtension("OES_element_index_uint"))alert("WebGL without 32-bit indices");
const vs=`attribute vec3 p,n,c;uniform mat4 m;varying vec3 vc,vn;
void main(){vc=c;vn=n;gl_Position=m*vec4(p,1.);}`;
const fs=`precision mediump float;varying vec3 vc,vn;uniform vec3 l;
void main(){vec3 q=normalize(vn);float d=.45+.55*abs(dot(q,l));gl_FragColor=vec4(vc*d,1.);}`;
function sh(t,s){const o=gl.createShader(t);gl.shaderSource(o,s);gl.compileShader(o);return o;}
const pr=gl.createProgram();gl.attachShader(pr,sh(gl.VERTEX_SHADER,vs));
gl.attachShader(pr,sh(gl.FRAGMENT_SHADER,fs));gl.linkProgram(pr);gl.useProgram(pr);
function attr(name,data,size,type,norm){const b=gl.createBuffer();gl.bindBuffer(gl.ARRAY_BUFFER,b);
gl.bufferData(gl.ARRAY_BUFFER,data,gl.STATIC_DRAW);const a=gl.getAttribLocation(pr,name);
gl.enableVertexAttribArray(a);gl.vertexAttribPointer(a,size,type,norm,0,0);}
attr("p",buf(D.p,Float32Array),3,gl.FLOAT,false);attr("n",buf(D.n,Float32Array),3,gl.FLOAT,false);
attr("c",buf(D.c,Uint8Array),3,gl.UNSIGNED_BYTE,true);
const idx=buf(D.i,Uint32Array),ib=gl.createBuffer();gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER,ib);
gl.bufferData(gl.ELEMENT_ARRAY_BUFFER,idx,gl.STATIC_DRAW);gl.enable(gl.DEPTH_TEST);
const ctr=D.lo.map((v,k)=>(v+D.hi[k])/2),rad=Math.hypot(...D.lo.map((v,k)=>D.hi[k]-v))/2;
let az=.6,el=.8,dist=2.6*rad;
function mul(a,b){const r=new Float32Array(16);for(let i=0;i<4;i++)for(let j=0;j<4;j++){
let s=0;for(let k=0;k<4;k++)s+=a[k*4+j]*b[i*4+k];r[i*4+j]=s;}return r;}
function draw(){const w=cv.clientWidth,h=cv.clientHeight;cv.width=w;cv.height=h;
gl.viewport(0,0,w,h);gl.clearColor(.965,.96,.945,1);gl.clear(gl.COLOR_BUFFER_BIT|gl.DEPTH_BUFFER_BIT);
const e=[ctr[0]+dist*Math.cos(el)*Math.sin(az),ctr[1]+dist*Math.sin(el),ctr[2]+dist*Math.cos(el)*Math.cos(az)];
let f=ctr.map((v,k)=>v-e[k]);const fl=Math.hypot(...f);f=f.map(v=>v/fl);
let r=[-f[2],0,f[0]];const rl=Math.hypot(...r);r=r.map(v=>v/rl);
const u=[r[1]*f[2]-r[2]*f[1],r[2]*f[0]-r[0]*f[2],r[0]*f[1]-r[1]*f[0]];
const dot=(a,b)=>a[0]*b[0]+a[1]*b[1]+a[2]*b[2];
const V=new Float32Array([r[0],u[0],-f[0],0,r[1],u[1],-f[1],0,r[2],u[2],-f[2],0,-dot(r,e),-dot(u,e),dot(f,e),1]);
const t=1/Math.tan(.35),n=dist/100,fa=dist+4*rad;
const P=new Float32Array([t*h/w,0,0,0,0,t,0,0,0,0,(fa+n)/(n-fa),-1,0,0,2*fa*n/(n-fa),0]);
gl.uniformMatrix4fv(gl.getUniformLocation(pr,"m"),false,mul(P,V));
gl.uniform3fv(gl.getUniformLocation(pr,"l"),f.map(v=>-v));
gl.drawElements(gl.TRIANGLES,idx.length,gl.UNSIGNED_INT,0);}
let drag=null;cv.onmousedown=e=>drag=[e.clientX,e.clientY];onmouseup=()=>drag=null;
onmousemove=e=>{if(!drag)return;az-=(e.clientX-drag[0])*.01;
el=Math.max(-1.5,Math.min(1.5,el+(e.clientY-drag[1])*.01));drag=[e.clientX,e.clientY];draw();};
cv.onwheel=e=>{e.preventDefault();dist*=Math.exp(e.deltaY*.001);draw();};onresize=draw;draw();
</script></body></html>
"""


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def viewer_html(mesh: trimesh.Trimesh, title: str = "scene", caption: str = "") -> str:
    """The page's text for ``mesh`` (vertex colours if any, else grey)."""
    if len(mesh.faces) == 0:
        raise UserError("nothing to show: the mesh has no faces")
    if mesh.visual.kind == "vertex":
        colours = np.asarray(mesh.visual.vertex_colors)[:, :3]
    else:
        colours = np.full((len(mesh.vertices), 3), 200, dtype=np.uint8)
    lo, hi = mesh.bounds
    fields = {
        "__TITLE__": html.escape(title),
        "__CAPTION__": html.escape(caption or title),
        "__P__": _b64(np.asarray(mesh.vertices, dtype="<f4")),
        "__N__": _b64(np.asarray(mesh.vertex_normals, dtype="<f4")),
        "__C__": _b64(colours.astype(np.uint8)),
        "__I__": _b64(np.asarray(mesh.faces, dtype="<u4")),
        "__LO__": str([round(float(v), 4) for v in lo]),
        "__HI__": str([round(float(v), 4) for v in hi]),
    }
    page = _PAGE
    for key, value in fields.items():
        page = page.replace(key, value)
    return page


def write_viewer(
    mesh: trimesh.Trimesh, path: str | os.PathLike[str], title: str = "scene", caption: str = ""
) -> Path:
    """Write the viewer page for ``mesh`` to ``path``, atomically."""
    target = Path(path)
    text = viewer_html(mesh, title, caption)
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target
