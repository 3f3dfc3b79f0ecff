"""The web demo: one self-contained HTML page served by the API at ``/`` (``osprey serve --ui``).

It talks only to this server's own endpoints (/v1/examples, /v1/segment, /v1/describe,
/v1/chat/completions), so it shares the API's queue, limits and token; no CDN, no build step.
Masks come back as COCO RLE and are decoded in the page to draw the overlay, in the colours of
:data:`osprey.overlay.PALETTE` (region k has the same colour here as in the overlay PNGs).
"""

from __future__ import annotations

import html
import json

from osprey.overlay import PALETTE

_PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Osprey demo</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:1rem;max-width:1100px}
#note{background:#fff3cd;border:1px solid #e0c36a;padding:.5rem;margin-bottom:.5rem}
#note:empty{display:none}
.row{display:flex;gap:1rem;flex-wrap:wrap;align-items:flex-start}
canvas{border:1px solid #999;cursor:crosshair;max-width:640px;image-rendering:pixelated}
#regions li{margin:.3rem 0}
#regions .answer{display:block;white-space:pre-wrap;overflow-wrap:anywhere;margin:.15rem 0 .15rem 1.3em}
.swatch{display:inline-block;width:1em;height:1em;vertical-align:middle;margin-right:.3em}
#chatlog{border:1px solid #ccc;min-height:4rem;padding:.4rem;white-space:pre-wrap;max-width:640px}
#status{color:#555}
.err{color:#b00020}
</style></head><body>
<h1>Osprey: describe regions</h1>
<div id="note" data-testid="note">__NOTE__</div>
<div class="row">
 <label>Example <select id="example" data-testid="example"><option value="">(choose)</option></select></label>
 <label>or upload <input type="file" id="upload" data-testid="upload" accept="image/*"></label>
 <label title="official: the official demo's prompt, post-processing, height 512, one SAM mask per click">Style
  <select id="demostyle" data-testid="demo-style"><option>auto</option><option>official</option><option>ours</option></select></label>
 <label id="tokenbox" __TOKEN_HIDDEN__>Token <input type="password" id="token" data-testid="token"></label>
</div>
<div class="row" style="margin:.5rem 0">
 <span>Prompt:</span>
 <label><input type="radio" name="tool" value="point" checked data-testid="tool-point"> click</label>
 <label><input type="radio" name="tool" value="box" data-testid="tool-box"> box</label>
 <label><input type="radio" name="tool" value="everything" data-testid="tool-everything"> segment everything, then click</label>
 <button id="clear" data-testid="clear">clear regions</button>
</div>
<div class="row">
 <canvas id="canvas" data-testid="canvas" width="16" height="16"></canvas>
 <div style="flex:1;min-width:280px">
  <ol id="regions" data-testid="regions"></ol>
  <div><label><input type="radio" name="mode" value="short" checked data-testid="mode-short"> short</label>
   <label><input type="radio" name="mode" value="detailed" data-testid="mode-detailed"> detailed</label>
   <button id="describe" data-testid="describe">describe all regions</button></div>
  <h3>Chat</h3>
  <div id="chatlog" data-testid="chatlog"></div>
  <form id="chatform"><input id="question" data-testid="question" size="40"
    placeholder="What is <region1> doing?"> <button data-testid="send">send</button></form>
 </div>
</div>
<p id="status" data-testid="status"></p>
<script>
"use strict";
const COLORS=__PALETTE__;
const state={image:null,dataUrl:null,w:0,h:0,regions:[],candidates:null,history:[]};
const MIN_DISPLAY=512;  // small images (the 256 px bundled scene) are drawn scaled up by a whole factor
function displayScale(w,h){return Math.max(1,Math.floor(MIN_DISPLAY/Math.max(w,h)));}
const $=id=>document.getElementById(id);
const canvas=$("canvas"),ctx=canvas.getContext("2d");
function status(msg,err){$("status").textContent=msg;$("status").className=err?"err":"";}
function headers(){const h={"Content-Type":"application/json"};const t=$("token").value;if(t)h.Authorization="Bearer "+t;return h;}
function demoStyle(){return $("demostyle").value;}  // sent as demo_style with every request (auto: the server's rule)
async function post(path,body){
  const r=await fetch(path,{method:"POST",headers:headers(),body:JSON.stringify({...body,demo_style:demoStyle()})});
  const j=await r.json().catch(()=>({error:{message:"HTTP "+r.status}}));
  if(!r.ok)throw new Error(j.error?j.error.message:("HTTP "+r.status));return j;}
function decodeRle(rle){ // COCO compressed RLE (column-major) -> Uint8Array(h*w) row-major
  const [h,w]=rle.size,s=rle.counts,runs=[];let p=0;
  while(p<s.length){let x=0,k=0,more=1;while(more){const c=s.charCodeAt(p)-48;x|=(c&0x1f)<<(5*k);more=c&0x20;p++;k++;
    if(!more&&(c&0x10))x|=-1<<(5*k);} if(runs.length>2)x+=runs[runs.length-2];runs.push(x);}
  const out=new Uint8Array(h*w);let idx=0,v=0;
  for(const n of runs){if(v){for(let i=idx;i<idx+n;i++){const y=i%h,xx=(i/h)|0;out[y*w+xx]=1;}}idx+=n;v^=1;}
  return out;}
function draw(){
  if(!state.image)return;ctx.drawImage(state.image,0,0);
  const img=ctx.getImageData(0,0,state.w,state.h),d=img.data;
  const layers=state.candidates&&!state.regions.length?state.candidates:[];
  layers.concat(state.regions).forEach((m,k)=>{const c=COLORS[(layers.includes(m)?k:k-layers.length)%COLORS.length];
    for(let i=0;i<m.bits.length;i++)if(m.bits[i]){d[4*i]=(d[4*i]+c[0])>>1;d[4*i+1]=(d[4*i+1]+c[1])>>1;d[4*i+2]=(d[4*i+2]+c[2])>>1;}});
  ctx.putImageData(img,0,0);
  state.regions.forEach((m,k)=>{const b=m.box;if(!b)return;ctx.fillStyle="black";ctx.fillRect(b[0],b[1],18,16);
    ctx.fillStyle="white";ctx.font="12px sans-serif";ctx.fillText(String(k+1),b[0]+4,b[1]+12);});}
function listRegions(){
  const ol=$("regions");ol.innerHTML="";
  state.regions.forEach((m,k)=>{const li=document.createElement("li");li.dataset.testid="region";
    const c=COLORS[k%COLORS.length];li.innerHTML=`<span class="swatch" style="background:rgb(${c})"></span>`+
    `&lt;region${k+1}&gt; <small>(${m.area} px)</small> `;
    const a=document.createElement("span");a.className="answer";a.dataset.testid="answer";a.textContent=m.answer||"";
    li.appendChild(a);  // the whole answer, wrapped under its swatch (textContent: never parsed as HTML)
    const x=document.createElement("button");x.textContent="remove";x.onclick=()=>{state.regions.splice(k,1);listRegions();draw();};
    li.appendChild(x);ol.appendChild(li);});}
function addMask(rec){state.regions.push({rle:rec.rle,bits:decodeRle(rec.rle),area:rec.area,box:rec.box});state.history=[];listRegions();draw();}
function loadImage(dataUrl){return new Promise(res=>{const im=new Image();im.onload=()=>{state.image=im;state.dataUrl=dataUrl;
  state.w=im.naturalWidth;state.h=im.naturalHeight;canvas.width=state.w;canvas.height=state.h;
  // display size only: the canvas keeps the image's pixels and pos() maps clicks back through clientWidth
  canvas.style.width=(state.w*displayScale(state.w,state.h))+"px";state.regions=[];state.candidates=null;
  state.history=[];$("chatlog").textContent="";listRegions();draw();res();};im.src=dataUrl;});}
function tool(){return document.querySelector("input[name=tool]:checked").value;}
function pos(e){const r=canvas.getBoundingClientRect();  // image pixels; the content box excludes the border
  return [(e.clientX-r.left-canvas.clientLeft)*state.w/canvas.clientWidth,(e.clientY-r.top-canvas.clientTop)*state.h/canvas.clientHeight];}
let dragStart=null;
canvas.addEventListener("mousedown",e=>{if(state.image&&tool()==="box")dragStart=pos(e);});
canvas.addEventListener("mouseup",async e=>{
  if(!state.image)return;const p=pos(e);
  try{
    if(tool()==="box"&&dragStart){const b=[Math.min(dragStart[0],p[0]),Math.min(dragStart[1],p[1]),Math.max(dragStart[0],p[0]),Math.max(dragStart[1],p[1])];
      dragStart=null;if(b[2]-b[0]<2||b[3]-b[1]<2)return;status("segmenting box…");
      const r=await post("/v1/segment",{image:state.dataUrl,box:b});addMask(r.masks[0]);status(`mask from box (${r.provider})`);}
    else if(tool()==="point"){status("segmenting click…");const r=await post("/v1/segment",{image:state.dataUrl,point:p});
      addMask(r.masks[0]);status(`mask from click (${r.provider})`);}
    else if(tool()==="everything"){
      if(!state.candidates){status("segmenting everything…");const r=await post("/v1/segment",{image:state.dataUrl,everything:true});
        state.candidates=r.masks.map(m=>({rle:m.rle,bits:decodeRle(m.rle),area:m.area,box:m.box}));draw();
        status(`${r.masks.length} segments (${r.provider}); click one to pick it`);return;}
      let best=null;const i=Math.floor(p[1])*state.w+Math.floor(p[0]);
      for(const m of state.candidates)if(m.bits[i]&&(!best||m.area<best.area))best=m;
      if(best){state.regions.push(best);state.history=[];listRegions();draw();status("picked a segment");}else status("no segment there");}
  }catch(err){status(err.message,true);}});
$("clear").onclick=()=>{state.regions=[];state.candidates=null;state.history=[];listRegions();draw();};
$("describe").onclick=async()=>{
  if(!state.regions.length){status("add a region first",true);return;}
  const mode=document.querySelector("input[name=mode]:checked").value;status("describing…");
  try{const r=await post("/v1/describe",{image:state.dataUrl,mode,regions:state.regions.map(m=>m.rle)});
    r.regions.forEach((reg,k)=>{if(state.regions[k])state.regions[k].answer=reg.answer;});listRegions();
    status(`described ${r.regions.length} region(s) in ${r.seconds} s`+(r.random_init?" (random weights: noise)":""));
  }catch(err){status(err.message,true);}};
$("chatform").onsubmit=async e=>{
  e.preventDefault();const q=$("question").value.trim();if(!q||!state.image)return;
  const turns=state.history.concat([{role:"user",text:q}]);
  const messages=turns.map((t,k)=>k===0?{role:"user",content:[{type:"image_url",image_url:{url:state.dataUrl}},
    {type:"text",text:t.text}]}:{role:t.role,content:t.text});
  const log=$("chatlog");log.textContent+="you: "+q+"\nosprey: ";status("answering…");
  try{const r=await fetch("/v1/chat/completions",{method:"POST",headers:headers(),body:JSON.stringify({messages,
      regions:state.regions.map(m=>m.rle),stream:true,demo_style:demoStyle()})});  // length: the server's default (1024, capped by --max-new-tokens)
    if(!r.ok){const j=await r.json();throw new Error(j.error.message);}
    const reader=r.body.getReader(),dec=new TextDecoder();let buf="",answer="";
    for(;;){const {value,done}=await reader.read();if(done)break;buf+=dec.decode(value,{stream:true});
      let i;while((i=buf.indexOf("\n\n"))>=0){const line=buf.slice(0,i);buf=buf.slice(i+2);
        if(!line.startsWith("data: "))continue;const data=line.slice(6);if(data==="[DONE]")continue;
        const j=JSON.parse(data);if(j.error)throw new Error(j.error.message);
        const piece=j.choices[0].delta.content||"";answer+=piece;log.textContent+=piece;}}
    log.textContent+="\n";state.history.push({role:"user",text:q},{role:"assistant",text:answer||" "});status("answered");
  }catch(err){log.textContent+="\n";status(err.message,true);}};
$("upload").onchange=()=>{const f=$("upload").files[0];if(!f)return;const rd=new FileReader();rd.onload=()=>loadImage(rd.result);rd.readAsDataURL(f);};
$("example").onchange=async()=>{const n=$("example").value;if(!n)return;
  const r=await fetch("/v1/examples/"+encodeURIComponent(n));const j=await r.json();await loadImage(j.image);status("loaded example "+n);};
fetch("/v1/examples").then(r=>r.json()).then(j=>{for(const n of j.examples){const o=document.createElement("option");o.value=n;o.textContent=n;$("example").appendChild(o);}});
</script></body></html>
"""


def page(*, token_required: bool = False, note: str | None = None) -> str:
    """The demo page; ``note`` (e.g. "random weights") is shown in a banner."""
    return (_PAGE.replace("__NOTE__", html.escape(note or ""))
            .replace("__TOKEN_HIDDEN__", "" if token_required else "hidden")
            .replace("__PALETTE__", json.dumps([[round(c * 255) for c in rgb] for rgb in PALETTE])))
