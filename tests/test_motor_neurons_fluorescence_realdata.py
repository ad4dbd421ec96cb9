"""Motor neurons in fluorescence on the shared ChAT sections (skipped without ../shared/data).

**Sections**: ``spinal_cord_fluorescent/chat/<id>_ChAT.jpg``, five whole mouse lumbar sections
exported as RGB JPEGs of fluorescence (ChAT in red), ≈ 2.02 µm/px for the 1,200-row images and
≈ 2.30 µm/px for the 750-row ones (from the scale bars; none in the files).

**Regions** (``VENTRAL_HORNS_UM``, polygons of (row, col) in µm from the image's top-left
corner): for 214_L1, 238_L2, 280_L5 and 290_L6 the grey-matter outline of the section's atlas
drawing (``atlas/``: the thin solid line), below the central canal's row and split at its
column; the canal located by eye (214_L1 row 578 / col 1040 px, 238_L2 330 / 682, 280_L5
355 / 765, 290_L6 385 / 813); outlines simplified to 2 px. 263_L4 has no atlas: its horns
were drawn by eye on the image, below the canal (row 535, col 1030), around the ventral
horn's brighter neuropil, not into the white matter.

**By-eye counts** (``BY_EYE``; one observer, the engineer of the fluorescence path, two
passes). Pass 1: each horn cropped to its polygon, red channel stretched from its 5th to
99.95th percentile, enlarged 3×, with a 20 px grid; every ChAT+ cell body (a compact bright
profile, not a fibre or a fibre crossing) of motor-neuron size — about ≥ 10 px across at
2 µm/px, ≥ 9 px at 2.3 µm/px, i.e. ≥ 20 µm — was listed with its position as "clear" or
"possible" (dim, or near the size cut-off). Pass 2: every "possible" was looked at again in
a 40 × 40 px crop enlarged 6× with a 20 µm circle drawn on it, and kept when it was a round
body distinct from the neuropil about the circle's size or larger, whatever its brightness.
Caveat: pass 2 was made after the assay had been run on these sections.

(clear + kept possible) per horn, left / right of the image:

- 214_L1: 2+2 / 3+1 = 8
- 238_L2: 8+2 / 12+4 = 26 (strong JPEG blocking; clustered somata hard to separate)
- 263_L4: 6+4 / 7+3 = 20
- 280_L5: 14+2 / 11+3 = 30
- 290_L6: 11+6 / 8+6 = 31

The real-data engineer's independent counts (``benchmarks/real_data_refs/chat_counts.csv`` on
the ``realdata`` branch, boxes of their own; clear only / with possible): 7/9, 21/30, 14/24,
29/38, 27/36 — ours lie within their range on every section.

Measured with the defaults (assay / by eye), per horn left + right: 214_L1 4+4 / 4+4,
238_L2 15+13 / 10+16, 263_L4 10+11 / 10+10, 280_L5 16+14 / 16+14, 290_L6 19+16 / 17+14, i.e.
8 / 8, 28 / 26, 21 / 20, 30 / 30, 35 / 31 (0, +8, +5, 0, +13 %); total 122 / 115 (+6 %).
Before the dim-soma and fibre rules (issue #14) they were 6, 28, 25, 30, 36 (−25, +8, +25, 0,
+16 %). Seven objects changed class, each looked at: on 214_L1 two round, isolated motor
neurons of 4.5–4.9 σ in a bright, fibre-dense horn, below the 5 σ mean brightness, are now
kept by the dim-soma rule; on 263_L4 (four) and 290_L6 (one) pieces of bright fibre bundles
are now rejected (elongated and continuing past both ends, or longer than 4.5 : 1). Left:
per horn 238_L2 (15 / 10 left, 13 / 16 right: the JPEG-blocked clusters of its horns) and
290_L6 right (16 / 14) are off by more than 15 %, though the sections are within it.
"""

from __future__ import annotations

import numpy as np
import pytest

from histoquant.assays.motor_neurons import run
from histoquant.io import read_image

pytestmark = pytest.mark.realdata

PIXEL_SIZE_UM = {"214_L1": 2.02, "238_L2": 2.30, "263_L4": 2.02, "280_L5": 2.30,
                 "290_L6": 2.30}

#: By-eye counts of ChAT+ motor-neuron somata per ventral horn (see the module docstring).
BY_EYE = {"214_L1": (4, 4), "238_L2": (10, 16), "263_L4": (10, 10), "280_L5": (16, 14),
          "290_L6": (17, 14)}

# The polygons are long lists of vertices: one per line would be 400 lines.
# ruff: noqa: E501
VENTRAL_HORNS_UM = {
    "214_L1": {
        "ventral_horn_left": [(1738.2, 1547.3), (1719.0, 1522.1), (1670.5, 1491.8), (1379.7, 1516.0), (1333.2, 1469.5), (1313.0, 1461.5), (1262.5, 1463.5), (1167.6, 1481.7), (1166.5, 2098.8), (1270.6, 2099.8), (1306.9, 2043.2), (1396.8, 1979.6), (1402.9, 1947.3), (1414.0, 1926.1), (1719.0, 1742.2), (1732.2, 1713.0), (1728.1, 1624.1), (1738.2, 1547.3)],
        "ventral_horn_right": [(1728.1, 2365.4), (1728.1, 2355.3), (1717.0, 2344.2), (1644.3, 2297.8), (1462.5, 2202.8), (1387.7, 2170.5), (1345.3, 2184.6), (1273.6, 2129.1), (1267.5, 2119.0), (1268.6, 2099.8), (1167.6, 2099.8), (1166.5, 2686.6), (1321.1, 2663.4), (1462.5, 2618.9), (1563.5, 2625.0), (1670.5, 2576.5), (1692.8, 2562.4), (1703.9, 2545.2), (1709.9, 2452.3), (1728.1, 2365.4)],
    },
    "238_L2": {
        "ventral_horn_left": [(1296.0, 1097.1), (1282.2, 1044.2), (1230.5, 980.9), (1168.4, 937.2), (1064.9, 879.7), (1018.9, 863.6), (940.7, 852.1), (878.6, 854.4), (805.0, 870.5), (759.0, 870.5), (757.8, 1566.3), (844.1, 1567.4), (859.0, 1543.3), (894.7, 1512.2), (1083.3, 1420.2), (1248.9, 1305.2), (1263.8, 1290.3), (1275.3, 1260.4), (1296.0, 1097.1)],
        "ventral_horn_right": [(1314.4, 2037.8), (1305.2, 1867.6), (1285.7, 1834.2), (1225.9, 1818.1), (968.3, 1696.2), (842.9, 1600.8), (844.1, 1567.4), (757.8, 1568.6), (761.3, 2291.9), (1041.9, 2303.4), (1097.1, 2287.3), (1182.2, 2234.4), (1270.8, 2162.0), (1300.6, 2093.0), (1289.1, 2079.2), (1305.2, 2076.9), (1314.4, 2037.8)],
    },
    "280_L5": {
        "ventral_horn_left": [(1413.3, 1074.1), (1413.3, 979.8), (1397.2, 929.2), (1352.4, 898.1), (1260.4, 872.8), (1085.6, 886.6), (1069.5, 893.5), (1016.6, 891.2), (959.1, 905.0), (910.8, 932.6), (868.2, 989.0), (815.3, 1039.6), (816.5, 1758.3), (938.4, 1758.3), (1007.4, 1700.8), (1117.8, 1659.4), (1173.0, 1592.7), (1261.5, 1524.9), (1261.5, 1442.1), (1270.8, 1426.0), (1317.9, 1371.9), (1381.1, 1324.8), (1388.0, 1253.5), (1404.1, 1193.7), (1413.3, 1074.1)],
        "ventral_horn_right": [(1406.4, 2557.6), (1404.1, 2488.6), (1385.8, 2415.0), (1365.0, 2272.4), (1345.5, 2248.2), (1308.7, 2232.1), (1286.8, 2201.1), (1270.8, 2145.9), (1261.5, 2047.0), (1212.1, 2011.3), (1094.8, 1898.6), (986.7, 1845.7), (930.3, 1784.8), (925.7, 1773.3), (936.1, 1758.3), (816.5, 1758.3), (815.3, 2539.2), (890.1, 2595.5), (984.4, 2634.6), (1099.4, 2659.9), (1232.8, 2673.8), (1343.2, 2666.8), (1368.5, 2655.3), (1392.6, 2619.7), (1406.4, 2557.6)],
    },
    "290_L6": {
        "ventral_horn_left": [(1385.8, 1276.5), (1378.8, 1170.7), (1367.3, 1140.8), (1350.1, 1121.2), (1290.3, 1086.8), (1163.8, 1054.5), (1048.8, 990.1), (1028.1, 985.5), (986.7, 1001.6), (884.3, 1094.8), (885.5, 1868.7), (1041.9, 1868.7), (1153.4, 1729.6), (1196.0, 1689.3), (1260.4, 1645.6), (1316.8, 1591.6), (1342.0, 1550.2), (1365.0, 1478.9), (1385.8, 1276.5)],
        "ventral_horn_right": [(1394.9, 2589.8), (1392.6, 2493.2), (1348.9, 2286.2), (1344.3, 2191.9), (1335.1, 2155.1), (1312.1, 2111.4), (1269.6, 2073.4), (1127.0, 2022.8), (1060.3, 1981.4), (1036.1, 1955.0), (1024.6, 1925.1), (1039.6, 1868.7), (885.5, 1868.7), (884.3, 2693.3), (900.4, 2720.9), (945.3, 2756.5), (982.1, 2761.1), (1150.0, 2705.9), (1221.3, 2694.4), (1336.3, 2689.8), (1374.2, 2663.4), (1394.9, 2589.8)],
    },
    "263_L4": {
        "ventral_horn_left": [(1080.7, 1191.8), (1080.7, 2070.5), (1252.4, 2020.0), (1414.0, 1969.5), (1595.8, 1939.2), (1676.6, 1818.0), (1727.1, 1616.0), (1737.2, 1414.0), (1696.8, 1252.4), (1616.0, 1191.8), (1414.0, 1171.6), (1212.0, 1181.7)],
        "ventral_horn_right": [(1080.7, 2090.7), (1080.7, 2989.6), (1313.0, 3030.0), (1515.0, 3050.2), (1656.4, 2989.6), (1737.2, 2828.0), (1737.2, 2626.0), (1676.6, 2424.0), (1595.8, 2242.2), (1414.0, 2191.7), (1252.4, 2141.2)],
    },
}


def _count(shared_data, section):
    path = shared_data / "spinal_cord_fluorescent" / "chat" / f"{section}_ChAT.jpg"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    px = PIXEL_SIZE_UM[section]
    regions = {name: np.asarray(poly) / px for name, poly in VENTRAL_HORNS_UM[section].items()}
    result = run(read_image(path), regions=regions, pixel_size_um=px)
    assert result.extra["modality"] == "fluorescence"
    assert result.extra["soma_channel"] == "R"
    summary = result.summary.set_index("region")
    return result, (int(summary.loc["ventral_horn_left", "n_motor_neurons"]),
                    int(summary.loc["ventral_horn_right", "n_motor_neurons"]))


@pytest.fixture(scope="module")
def counts(shared_data):
    return {s: _count(shared_data, s) for s in PIXEL_SIZE_UM}


def test_counts_follow_the_by_eye_counts(counts):
    """Per section within 30 %, all sections together within 15 % of the by-eye counts; the
    somata found are of motor-neuron size (no background rectangles: the brightfield path
    found 'somata' of 100,000 µm² on these images before the fluorescence path)."""
    found_total = eye_total = 0
    for section, (result, found) in counts.items():
        eye = BY_EYE[section]
        n, m = sum(found), sum(eye)
        print(f"{section}: found {found} = {n}, by eye {eye} = {m} ({100 * (n - m) / m:+.0f} %)")
        assert abs(n - m) <= 0.3 * m, section
        mn = result.objects[result.objects["class"] == "motor_neuron"]
        assert mn["equivalent_diameter_um"].between(20, 60).all()
        assert result.objects["area_um2"].max() < 5000
        found_total += n
        eye_total += m
    assert abs(found_total - eye_total) <= 0.15 * eye_total


def test_issue_target(counts):
    """Issue #14: every section within 15 % of the by-eye count."""
    for section, (_, found) in counts.items():
        m = sum(BY_EYE[section])
        assert abs(sum(found) - m) <= 0.15 * m, section
