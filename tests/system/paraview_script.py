"""Run by pvbatch (ParaView 5.11's Python): open a run's fields.xdmf and interfaces.xdmf as a
user would, check the arrays, threshold the sulfur by the phase cell array, colour it by x at
the last time and save screenshots. Prints one JSON line with what it found.

usage: pvbatch paraview_script.py OUT_DIR IMAGE_PREFIX
"""

import json
import sys

from paraview import servermanager
from paraview.simple import (
    ColorBy,
    GetActiveViewOrCreate,
    GetAnimationScene,
    Render,
    ResetCamera,
    SaveScreenshot,
    Show,
    Threshold,
    Xdmf3ReaderS,
    XDMFReader,
)

out, prefix = sys.argv[1], sys.argv[2]
report = {}
# ParaView's default reader for .xdmf (Xdmf3 "S": static mesh) and the legacy XDMF reader
reader = Xdmf3ReaderS(registrationName="fields", FileName=[out + "/fields.xdmf"])
legacy = XDMFReader(registrationName="legacy", FileNames=[out + "/fields.xdmf"])
legacy.UpdatePipelineInformation()
report["legacy_times"] = list(legacy.TimestepValues)
legacy.UpdatePipeline(legacy.TimestepValues[-1])
report["legacy_cells"] = legacy.GetDataInformation().GetNumberOfCells()
report["legacy_x_range"] = list(legacy.PointData["x"].GetRange())
report["legacy_cell_arrays"] = [legacy.CellData.GetArray(i).GetName() for i in range(len(legacy.CellData))]
reader.UpdatePipelineInformation()
times = list(reader.TimestepValues)
report["times"] = times
scene = GetAnimationScene()
scene.UpdateAnimationUsingDataTimeSteps()
last = times[-1]
reader.UpdatePipeline(last)
info = reader.GetDataInformation()
report["points"] = info.GetNumberOfPoints()
report["cells"] = info.GetNumberOfCells()
report["point_arrays"] = [reader.PointData.GetArray(i).GetName() for i in range(len(reader.PointData))]
report["cell_arrays"] = [reader.CellData.GetArray(i).GetName() for i in range(len(reader.CellData))]
report["phase_range"] = list(reader.CellData["phase"].GetRange())
report["x_range"] = list(reader.PointData["x"].GetRange())

# the sulfur: Threshold on the phase cell array = 1, at the first and the last time
sulfur = Threshold(registrationName="sulfur", Input=reader, Scalars=["CELLS", "phase"])
sulfur.LowerThreshold, sulfur.UpperThreshold = 1, 1
for label, t in (("first", times[0]), ("last", last)):
    sulfur.UpdatePipeline(t)
    report[f"S_cells_{label}"] = sulfur.GetDataInformation().GetNumberOfCells()
    report[f"S_x_range_{label}"] = list(sulfur.PointData["x"].GetRange())
# the NaN count of x on the thresholded sulfur (fetched to this process)
data = servermanager.Fetch(sulfur)
x = data.GetPointData().GetArray("x")
report["S_points"] = x.GetNumberOfTuples()
report["S_x_nan"] = sum(1 for i in range(x.GetNumberOfTuples()) if x.GetValue(i) != x.GetValue(i))

view = GetActiveViewOrCreate("RenderView")
view.ViewSize = [800, 600]
view.ViewTime = last
view.OrientationAxesVisibility = 0
display = Show(sulfur, view)
ColorBy(display, ("POINTS", "x"))
display.RescaleTransferFunctionToDataRange(True, False)
display.SetScalarBarVisibility(view, False)
view.Background = [1.0, 1.0, 1.0]
try:
    view.UseColorPaletteForBackground = 0
except AttributeError:
    pass
ResetCamera(view)
Render(view)
SaveScreenshot(prefix + "_sulfur_x.png", view, ImageResolution=[800, 600])

# the interfaces: a static grid with the cell array "interface"
faces = Xdmf3ReaderS(registrationName="interfaces", FileName=[out + "/interfaces.xdmf"])
faces.UpdatePipeline()
report["interface_cells"] = faces.GetDataInformation().GetNumberOfCells()
report["interface_arrays"] = [faces.CellData.GetArray(i).GetName() for i in range(len(faces.CellData))]
report["interface_range"] = list(faces.CellData["interface"].GetRange())
s_se = Threshold(registrationName="s_se", Input=faces, Scalars=["CELLS", "interface"])
s_se.LowerThreshold, s_se.UpperThreshold = 12, 12
s_se.UpdatePipeline()
report["S_SE_facets"] = s_se.GetDataInformation().GetNumberOfCells()
print("PARAVIEW_REPORT " + json.dumps(report), flush=True)
