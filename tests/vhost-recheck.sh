#! /bin/sh
# Copyright (c) 2026 The ovs-vhost-client authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at:
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

# vhost-recheck.sh TESTSUITE DIR [TESTSUITE-ARGS...]
#
# Called by "make check" when the test suite in DIR failed.  If every test
# that failed is a live migration test that lost its guest after migrating
# (it wrote "guest-lost": the QEMU guest's kernel crashed or stopped
# answering at the destination, which QEMU 7.2 under TCG does now and then
# with upstream's switch as with ours; see the README's "Live migration"),
# runs those tests again, up to twice, for as long as each failure is a
# lost guest, and exits with the last result.  Otherwise, or if nothing
# failed, exits 1.  The directory of each failed run of a test is kept as
# DIR/testsuite.dir/N.lost (the first) and N.lost2 (the second).

testsuite=$1
dir=$2
shift 2

# lost_guests: prints the tests that failed, if each lost its guest;
# fails otherwise, or if none failed.
lost_guests () {
    local t n failed=
    for t in "$dir"/testsuite.dir/[0-9]*; do
        case $t in
            *.lost*) continue ;;
        esac
        test -f "$t/testsuite.log" || continue
        n=${t##*/}
        if test ! -f "$t/guest-lost"; then
            echo "recheck: test $n failed, not for a lost guest: no recheck" >&2
            return 1
        fi
        failed="$failed $n"
    done
    test -n "$failed" || return 1
    echo $failed
}

for round in "" 2; do
    failed=$(lost_guests) || exit 1
    for n in $failed; do
        echo "recheck: test $n: $(head -n 1 "$dir/testsuite.dir/$n/guest-lost");" \
             "running it again"
        rm -rf "$dir/testsuite.dir/$n.lost$round"
        mv "$dir/testsuite.dir/$n" "$dir/testsuite.dir/$n.lost$round"
    done
    ${SHELL:-/bin/sh} "$testsuite" -C "$dir" "$@" $failed && exit 0
done
exit 1
