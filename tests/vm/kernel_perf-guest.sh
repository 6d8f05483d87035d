#!/bin/bash
# Guest half of tests/vm/kernel_perf.sh (runs inside the VM through ci/vm/run.sh).
# Per-write cost of provision / overwrite / cow / cow-overwrite at each block size, QD1
# direct=1 fio replaying seeded iologs of distinct pool blocks ($IN/logs/<geom>-<bs>.log,
# made on the host), KP_REPS times each, in four set-ups on the same disks:
#   loop-lvm   kernel:   Docker's loop preset: sparse 100G data + 2G metadata files on an ext4
#                        scratch disk, losetup, dmsetup thin-pool (64k blocks, low water 32768,
#                        skip_block_zeroing); thins by pool messages (as Docker's driver)
#   loop-lvm   libthinp: fio's thinp engine on sparse files of the same sizes (thinp_mode=loop)
#   direct-lvm kernel:   the seed's LVM procedure on the virtio disk: pvcreate, vgcreate,
#                        lvcreate 95%VG / 1%VG, lvconvert --zero n -c 512K, profile 80/20;
#                        thins by pool messages on the LVM pool (as Docker's driver); then the
#                        autoextend check (lvextend --use-policies, what dmeventd would run)
#   direct-lvm libthinp: thinp engine (thinp_mode=direct, 512k, no zeroing) on linear LVs in
#                        the same places as the pool's data and metadata
# Repetitions: the iologs write distinct blocks, so every repetition of every size gets a fresh
# thin (provision, then overwrite on it) and a fresh snapshot of the filled origin (cow, then
# cow-overwrite), both deleted afterwards. loop-lvm: the two pools live side by side on the
# scratch disk (2G + 1G per repetition: each origin takes 256 MiB, and each repetition up to
# ~0.4 GiB per engine, as dm-thin does not reuse freed blocks at once), and the engines
# alternate per repetition and size (kernel first in odd repetitions, libthinp first in even
# ones). direct-lvm: the LVM pool fills the 1G disk, so libthinp's LVs can only be made after
# it is removed: all kernel repetitions, then all libthinp repetitions. Every case starts
# after the pool's status (for the kernel: a metadata commit) and a sync, so the write-back of
# one case's data and metadata (loop-lvm is buffered) does not land in the next one's
# measurement.
# Output in $OUT: fio/<setup>-<engine>-<case>-<bs>-r<rep>.json (fio JSON; -stats.json: the
# engine's classes), checks.tsv (setup engine case bs rep used-before used-after: pool data
# blocks), times.tsv (setup engine rep bs start end: guest uptime of each group of four
# cases), autoextend.txt, fill.tsv (origin fill times), info.txt.
# Environment: KP_BS ("4k 64k 1m"), KP_THIN_MB (256), KP_REPS (3).
set -uo pipefail
BS_LIST=${KP_BS:-4k 64k 1m}
THIN_MB=${KP_THIN_MB:-256}
REPS=${KP_REPS:-3}
THIN_SECT=$((THIN_MB * 2048))
mkdir -p "$OUT/fio"
: >"$OUT/checks.tsv"
: >"$OUT/fill.tsv"
: >"$OUT/times.tsv"
echo "kernel=$(uname -r) cpus=$(nproc) fio=$(fio --version) reps=$REPS" >"$OUT/info.txt"
log() { echo "kperf: [$(cut -d' ' -f1 /proc/uptime)] $*"; }
die() { echo "kperf: FATAL: $*" >&2; exit 1; }
now() { cut -d' ' -f1 /proc/uptime; }
case $REPS in '' | *[!0-9]* | 0) die "KP_REPS '$REPS' is not a positive integer" ;; esac

for m in dm-thin-pool dm-snapshot loop; do /usr/sbin/modprobe "$m" 2>/dev/null || true; done

scratch=/dev/disk/by-id/virtio-scratch
direct=/dev/disk/by-id/virtio-direct
spare=/dev/disk/by-id/virtio-spare
for d in "$scratch" "$direct" "$spare"; do [ -b "$d" ] || die "no disk $d"; done
direct=$(readlink -f "$direct")
spare=$(readlink -f "$spare")
mkfs.ext4 -q -F "$scratch"
mkdir -p /scratch
mount -t ext4 "$scratch" /scratch

# ---- kernel helpers (POOL = dm name of the thin-pool device) -----------------------------
kused() { dmsetup status "$POOL" | awk '{split($6, a, "/"); print a[1]}'; }
kthin() { # ID NAME
	dmsetup message "$POOL" 0 "create_thin $1" &&
		dmsetup create "$2" --table "0 $THIN_SECT thin /dev/mapper/$POOL $1"
}
ksnap() { # ID ORIGIN_ID ORIGIN_NAME NAME
	dmsetup suspend "$3" && dmsetup message "$POOL" 0 "create_snap $1 $2" &&
		dmsetup resume "$3" &&
		dmsetup create "$4" --table "0 $THIN_SECT thin /dev/mapper/$POOL $1"
}
kdel() { dmsetup remove "$2" && dmsetup message "$POOL" 0 "delete $1"; } # ID NAME
kfio() { # SETUP CASE BS REP DEVNAME GEOM
	local u0 u1 j=$OUT/fio/$1-kernel-$2-$3-r$4.json
	u0=$(kused) # (dmsetup status without --noflush commits the pool's metadata first)
	sync
	fio --name="$2" --ioengine=psync --direct=1 --iodepth=1 \
		--read_iolog="$IN/logs/$6-$3.log" --replay_redirect="/dev/mapper/$5" \
		--output-format=json --output="$j" >/dev/null 2>"$j.err" || log "fio FAILED: $1 kernel $2 $3 r$4: $(head -c 300 "$j.err")"
	u1=$(kused)
	printf '%s\tkernel\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$u0" "$u1" >>"$OUT/checks.tsv"
}
kernel_origin() { # SETUP: thin 1, written through (1 MiB sequential)
	local setup=$1 t0 t1
	kthin 1 kp-orig || die "$setup: create origin"
	t0=$(now)
	dd if=/dev/zero of=/dev/mapper/kp-orig bs=1M count="$THIN_MB" oflag=direct status=none || die "$setup: fill origin"
	t1=$(now)
	printf '%s\tkernel\t%s\t%s\n' "$setup" "$THIN_MB" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" >>"$OUT/fill.tsv"
}
kernel_set() { # SETUP GEOM REP I BS: the four cases on a fresh thin and a fresh snapshot
	local setup=$1 geom=$2 rep=$3 i=$4 bs=$5 t0 tid=$((100 + 10 * $3 + $4)) sid=$((200 + 10 * $3 + $4))
	log "$setup kernel rep $rep/$REPS bs=$bs"
	t0=$(now)
	kthin "$tid" kp-new || die "$setup: create thin $tid"
	kfio "$setup" provision "$bs" "$rep" kp-new "$geom"
	kfio "$setup" overwrite "$bs" "$rep" kp-new "$geom"
	ksnap "$sid" 1 kp-orig kp-snap || die "$setup: snapshot $sid"
	kfio "$setup" cow "$bs" "$rep" kp-snap "$geom"
	kfio "$setup" cow-overwrite "$bs" "$rep" kp-snap "$geom"
	kdel "$tid" kp-new || die "$setup: delete thin $tid"
	kdel "$sid" kp-snap || die "$setup: delete snapshot $sid"
	printf '%s\tkernel\t%s\t%s\t%s\t%s\n' "$setup" "$rep" "$bs" "$t0" "$(now)" >>"$OUT/times.tsv"
}

# ---- libthinp helpers (POOLARGS: thinp CLI pool args; ENGARGS: fio engine pool options;
# GEOM: which iologs) ------------------------------------------------------------------------
lused() { "$THINP" pool status "${POOLARGS[@]}" | awk '{split($3, a, "/"); print a[1]}'; }
lfio() { # SETUP CASE BS REP DEV [extra fio args]
	local setup=$1 case=$2 bs=$3 rep=$4 dev=$5 u0 u1 j=$OUT/fio/$1-libthinp-$2-$3-r$4.json
	shift 5
	u0=$(lused)
	sync
	fio --name="$case" --ioengine="external:$THINP_IOENGINE" "${ENGARGS[@]}" --thinp_dev="$dev" \
		--thinp_dev_size="${THIN_MB}m" --direct=1 --iodepth=1 "$@" \
		--read_iolog="$IN/logs/$GEOM-$bs.log" --replay_redirect=thin --thinp_stats="${j%.json}-stats.json" \
		--output-format=json --output="$j" >/dev/null 2>"$j.err" || log "fio FAILED: $setup libthinp $case $bs r$rep: $(head -c 300 "$j.err")"
	u1=$(lused)
	printf '%s\tlibthinp\t%s\t%s\t%s\t%s\t%s\n' "$setup" "$case" "$bs" "$rep" "$u0" "$u1" >>"$OUT/checks.tsv"
}
libthinp_origin() { # SETUP: creates the pool (ENGARGS) and thin 1, written through
	local setup=$1 t0 t1
	t0=$(now)
	fio --name=fill --ioengine="external:$THINP_IOENGINE" "${ENGARGS[@]}" --thinp_create=1 \
		--thinp_dev=1 --thinp_dev_size="${THIN_MB}m" --rw=write --bs=1m --size="${THIN_MB}m" \
		--direct=1 --iodepth=1 --output-format=json --output="$OUT/fio/$setup-libthinp-fill.json" \
		>/dev/null 2>"$OUT/fio/$setup-libthinp-fill.err" || die "$setup libthinp: fill origin: $(head -c 400 "$OUT/fio/$setup-libthinp-fill.err")"
	t1=$(now)
	printf '%s\tlibthinp\t%s\t%s\n' "$setup" "$THIN_MB" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" >>"$OUT/fill.tsv"
}
libthinp_set() { # SETUP REP I BS: the four cases on a fresh thin and a fresh snapshot
	local setup=$1 rep=$2 i=$3 bs=$4 t0 tid=$((100 + 10 * $2 + $3)) sid=$((200 + 10 * $2 + $3))
	log "$setup libthinp rep $rep/$REPS bs=$bs"
	t0=$(now)
	lfio "$setup" provision "$bs" "$rep" "$tid"
	lfio "$setup" overwrite "$bs" "$rep" "$tid"
	lfio "$setup" cow "$bs" "$rep" "$sid" --thinp_snapshot_of=1
	lfio "$setup" cow-overwrite "$bs" "$rep" "$sid"
	"$THINP" thin delete "${POOLARGS[@]}" "$tid" || log "$setup libthinp: thin delete $tid failed"
	"$THINP" thin delete "${POOLARGS[@]}" "$sid" || log "$setup libthinp: thin delete $sid failed"
	printf '%s\tlibthinp\t%s\t%s\t%s\t%s\n' "$setup" "$rep" "$bs" "$t0" "$(now)" >>"$OUT/times.tsv"
}

# ======== loop-lvm: the kernel's pool and libthinp's side by side, repetitions interleaved ====
log "loop-lvm kernel: Docker's loop preset"
truncate -s 100G /scratch/data
truncate -s 2G /scratch/metadata
lo_data=$(losetup -f --show /scratch/data)
lo_meta=$(losetup -f --show /scratch/metadata)
POOL=kp-loop-pool
dmsetup create "$POOL" --table \
	"0 $((100 * 1024 * 2048)) thin-pool $lo_meta $lo_data 128 32768 1 skip_block_zeroing" || die "loop pool"
dmsetup table "$POOL" >"$OUT/loop-lvm-kernel.table"
kernel_origin loop-lvm
log "loop-lvm libthinp: sparse files, thinp_mode=loop"
mkdir -p /scratch/lib
POOLARGS=(/scratch/lib)
ENGARGS=(--thinp_pool=/scratch/lib --thinp_mode=loop --thinp_data_size=100g --thinp_metadata_size=2g
	--thinp_block_size=64k --thinp_zero=0)
GEOM=loop
libthinp_origin loop-lvm
# dm-thin's allocator moves on to fresh blocks rather than reusing the ones a deleted thin
# freed, so the kernel's sparse data file grows by about one repetition's allocations each
# time (libthinp's by at most that): check for room before each repetition (the host sizes the
# scratch disk by KP_REPS); a full disk would otherwise show up as I/O errors in the pool
loop_need_mb=0
for bs in $BS_LIST; do
	case $bs in *k) b=$((${bs%k} * 1024)) ;; *m) b=$((${bs%m} * 1048576)) ;; *) b=$bs ;; esac
	n=$(grep -c ' write ' "$IN/logs/loop-$bs.log")
	# provision + cow, each n writes of at least a 64k block, both engines
	loop_need_mb=$((loop_need_mb + 4 * n * (b > 65536 ? b : 65536) / 1048576))
done
for ((rep = 1; rep <= REPS; rep++)); do
	free_mb=$(df -Pm /scratch | awk 'NR == 2 {print $4}')
	[ "$free_mb" -gt "$loop_need_mb" ] ||
		die "loop-lvm rep $rep: the scratch disk has $free_mb MiB free, a repetition needs about $loop_need_mb MiB (raise the --disk size of 'scratch' in kernel_perf.sh)"
	i=0
	for bs in $BS_LIST; do
		i=$((i + 1))
		if [ $((rep % 2)) = 1 ]; then
			kernel_set loop-lvm loop "$rep" "$i" "$bs"
			libthinp_set loop-lvm "$rep" "$i" "$bs"
		else
			libthinp_set loop-lvm "$rep" "$i" "$bs"
			kernel_set loop-lvm loop "$rep" "$i" "$bs"
		fi
	done
done
df -k /scratch >"$OUT/loop-lvm-df.txt" 2>&1
du -k /scratch/data /scratch/metadata /scratch/lib/* >>"$OUT/loop-lvm-df.txt" 2>&1
dmsetup remove kp-orig
dmsetup remove "$POOL"
losetup -d "$lo_data" "$lo_meta"
rm -rf /scratch/data /scratch/metadata /scratch/lib

# ======== direct-lvm, kernel ===================================================================
log "direct-lvm kernel: the seed's LVM procedure on $direct"
pvcreate -q "$direct" || die pvcreate
vgcreate -q docker "$direct" || die vgcreate
lvcreate -q --wipesignatures y -n thinpool docker -l 95%VG || die "lvcreate data"
lvcreate -q --wipesignatures y -n thinpoolmeta docker -l 1%VG || die "lvcreate meta"
lvconvert -q -y --zero n -c 512K --thinpool docker/thinpool --poolmetadata docker/thinpoolmeta || die lvconvert
mkdir -p /etc/lvm/profile
cat >/etc/lvm/profile/docker-thinpool.profile <<'EOF'
activation {
	thin_pool_autoextend_threshold=80
	thin_pool_autoextend_percent=20
}
EOF
lvchange -q --metadataprofile docker-thinpool docker/thinpool || die "lvchange profile"
lvchange -q -ay docker/thinpool 2>/dev/null || true
lvs -a -o+seg_monitor,chunk_size,zero docker >"$OUT/direct-lvm-lvs.txt" 2>&1
dmsetup table >"$OUT/direct-lvm-dmsetup-table.txt"
POOL=$(dmsetup table | awk -F: '$2 ~ / thin-pool / {print $1; exit}')
[ -n "$POOL" ] || die "no thin-pool device after lvconvert (see direct-lvm-dmsetup-table.txt)"
log "direct-lvm: pool device $POOL: $(dmsetup table "$POOL")"
pool_lv_size() { lvs --noheadings --units m --nosuffix -o lv_size docker/thinpool | tr -d ' '; }
pool_pct() { lvs --noheadings -o data_percent docker/thinpool | tr -d ' '; }
kernel_origin direct-lvm
for ((rep = 1; rep <= REPS; rep++)); do
	i=0
	for bs in $BS_LIST; do
		i=$((i + 1))
		kernel_set direct-lvm direct "$rep" "$i" "$bs"
	done
done

# ---- autoextend: what dmeventd would run, below and above the 80% threshold ----------------
{
	echo "pool device: $POOL; profile: threshold 80, percent 20"
	s0=$(pool_lv_size) p0=$(pool_pct)
	lvextend --use-policies docker/thinpool >/tmp/ae0.log 2>&1
	rc0=$?
	s1=$(pool_lv_size)
	echo "below: size_mb=$s0 data_percent=$p0 lvextend_rc=$rc0 size_after_mb=$s1"
	# fill a thin until the pool is past 80%
	need=$(awk -v s="$s0" -v p="$p0" 'BEGIN {m = s * (0.86 - p / 100); if (m < 1) m = 1; printf "%d", m}')
	dmsetup message "$POOL" 0 "create_thin 99"
	dmsetup create kp-fill --table "0 $((need * 2048)) thin /dev/mapper/$POOL 99"
	dd if=/dev/zero of=/dev/mapper/kp-fill bs=1M count="$need" oflag=direct status=none
	sync
	p1=$(pool_pct)
	lvextend --use-policies docker/thinpool >/tmp/ae1.log 2>&1
	rc1=$?
	s2=$(pool_lv_size) p2=$(pool_pct)
	echo "above: wrote_mb=$need data_percent=$p1 lvextend_rc=$rc1 size_mb=$s2 data_percent_after=$p2"
	echo "above_lvextend_output: $(tr '\n' ' ' </tmp/ae1.log)"
	if [ "$s2" = "$s0" ]; then
		# the seed's 95%VG leaves only ~4% free: add the spare disk, as the seed tells one to
		pvcreate -q "$spare" && vgextend -q docker "$spare"
		lvextend --use-policies docker/thinpool >/tmp/ae2.log 2>&1
		rc2=$?
		s3=$(pool_lv_size) p3=$(pool_pct)
		echo "after_vgextend: lvextend_rc=$rc2 size_mb=$s3 data_percent=$p3"
		echo "after_vgextend_lvextend_output: $(tr '\n' ' ' </tmp/ae2.log)"
	fi
	dmsetup status "$POOL"
} >"$OUT/autoextend.txt" 2>&1
cat "$OUT/autoextend.txt"

# ======== direct-lvm, libthinp =================================================================
data_mb=$(lvs --noheadings --units m --nosuffix -o lv_size docker/thinpool_tdata | tr -d ' ')
meta_mb=$(lvs --noheadings --units m --nosuffix -o lv_size docker/thinpool_tmeta | tr -d ' ')
for d in kp-fill kp-orig; do dmsetup remove "$d" || true; done
lvremove -q -y docker/thinpool || die "lvremove pool"
# back to the pool's original data size; data first then metadata, as the seed allocated them
lvcreate -q -y --wipesignatures y -n libdata -L "${s0:-$data_mb}m" docker "$direct" || die "lvcreate libdata"
lvcreate -q -y --wipesignatures y -n libmeta -L "${meta_mb}m" docker "$direct" || die "lvcreate libmeta"
dd if=/dev/zero of=/dev/docker/libmeta bs=1M count=4 oflag=direct status=none
lvs -a -o+devices,seg_start_pe docker >>"$OUT/direct-lvm-lvs.txt" 2>&1
log "direct-lvm libthinp: data $(readlink -f /dev/docker/libdata), metadata $(readlink -f /dev/docker/libmeta)"
POOLARGS=(--data /dev/docker/libdata --metadata /dev/docker/libmeta)
ENGARGS=(--thinp_data=/dev/docker/libdata --thinp_metadata=/dev/docker/libmeta --thinp_mode=direct
	--thinp_block_size=512k --thinp_zero=0)
GEOM=direct
libthinp_origin direct-lvm
for ((rep = 1; rep <= REPS; rep++)); do
	i=0
	for bs in $BS_LIST; do
		i=$((i + 1))
		libthinp_set direct-lvm "$rep" "$i" "$bs"
	done
done
vgchange -q -an docker || true
log "done"
