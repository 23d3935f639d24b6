#!/usr/bin/env python3
"""No import circles between files: within each crate, the modules that name each other
(`use crate::a`, `super::b`, `crate::c::f()`) must form no cycle, so every file can be read
after the ones it uses. Test modules (`#[cfg(test)] mod tests`) and comments do not count.
Prints each circle and exits 1 when there is one."""
import os,re,sys,glob
def modname(root,path):
    rel=os.path.relpath(path,root)[:-3]
    parts=rel.split('/')
    if parts[-1] in('mod','lib','main'): parts=parts[:-1]
    return '::'.join(parts)
root=os.path.join(os.path.dirname(os.path.abspath(__file__)),'..')
found=0
for crate in sorted(glob.glob(root+'/crates/*/src'))+[root+'/leased/src']:
    files={}
    for p in glob.glob(crate+'/**/*.rs',recursive=True):
        files[modname(crate,p)]=p
    mods=set(files)
    g={m:set() for m in mods}
    for m,p in files.items():
        s=open(p).read()
        k=s.find('#[cfg(test)]\nmod tests')
        if k>=0: s=s[:k]
        s=re.sub(r'//[^\n]*','',s)
        base=m.split('::') if m else []
        for ref in re.findall(r'\b((?:crate|super)(?:::\w+)+)',s):
            parts=ref.split('::')
            if parts[0]=='crate': path=[]; parts=parts[1:]
            else:
                path=base[:] if not files[m].endswith(('mod.rs','lib.rs')) else base[:]
                # super from file module m refers to parent
                path=base[:-1]
                parts=parts[1:]
                while parts and parts[0]=='super': path=path[:-1]; parts=parts[1:]
            # longest module prefix
            best=None
            for i in range(len(parts),-1,-1):
                cand='::'.join(path+parts[:i])
                if cand in mods: best=cand;break
            if best is not None and best!=m and not m.startswith(best+'::') and not best.startswith(m+'::') and best!='':
                g[m].add(best)
        # braces: use crate::{a, b::c}
        for grp in re.findall(r'use (crate|super)::\{([^;]*)\};',s,re.S):
            for item in re.split(r',',grp[1]):
                item=item.strip().split('::')[0].strip()
                if not item or item in('self',): continue
                pre=[] if grp[0]=='crate' else base[:-1]
                cand='::'.join(pre+[item])
                if cand in mods and cand!=m and cand!='': g[m].add(cand)
    # find cycles (SCCs)
    idx={};low={};st=[];on=set();res=[];c=[0]
    sys.setrecursionlimit(10000)
    def sc(v):
        idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
        for w in g[v]:
            if w not in idx: sc(w);low[v]=min(low[v],low[w])
            elif w in on: low[v]=min(low[v],idx[w])
        if low[v]==idx[v]:
            comp=[]
            while True:
                w=st.pop();on.discard(w);comp.append(w)
                if w==v:break
            if len(comp)>1: res.append(comp)
    for v in g:
        if v not in idx: sc(v)
    for r in res:
        found+=1
        print('import circle in '+os.path.relpath(crate,root)+': '+' <-> '.join(sorted(r)), file=sys.stderr)
sys.exit(1 if found else 0)
