"""Writes a meta dump (JSON Lines) of a generated volume to stdout: the root, D directories
of F one-byte files, each with one slice (docs/benchmarks.md, "meta dump / meta load of
1,000,000 files"). Usage: python3 docs/tools/gen_dump.py [D] [F] > big.jsonl"""
import json,sys
D = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
F = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
t={"sec":1795928700,"nsec":0}
def attr(typ,mode,nlink,length,parent):
    return {"typ":typ,"mode":mode,"uid":0,"gid":0,"rdev":0,"atime":t,"mtime":t,"ctime":t,"nlink":nlink,"length":length,"parent":parent,"flags":0}
out=sys.stdout
n=D*F
hdr={"dump_version":1,"setting":{"name":"big","uuid":"00000000-0000-0000-0000-000000000001","version":1,"block_size":4194304,"capacity":0,"inodes":0,"created":1795928700},
     "counters":{"nextChunk":n+2,"nextInode":D+n+2,"totalInodes":1+D+n,"usedSpace":4096*(1+D+n)}}
out.write(json.dumps(hdr,separators=(',',':'))+"\n")
out.write(json.dumps({"ino":1,"attr":attr("directory",493,2+D,4096,1)},separators=(',',':'))+"\n")
for d in range(D):
    out.write(json.dumps({"ino":2+d,"attr":attr("directory",493,2,4096,1),"links":[[1,"d%d"%d]]},separators=(',',':'))+"\n")
ino=2+D; sid=1
for d in range(D):
    for f in range(F):
        out.write(json.dumps({"ino":ino,"attr":attr("regular",420,1,1,2+d),"links":[[2+d,"f%d"%f]],"chunks":[[0,[{"pos":0,"id":sid,"size":1,"off":0,"len":1}]]]},separators=(',',':'))+"\n")
        ino+=1; sid+=1
