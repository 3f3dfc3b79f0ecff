"""Class names with synonyms for open-vocabulary segmentation (Osprey's ``*_with_prompt_eng.txt``).

Line ``k`` of each list is contiguous class ``k`` (ADE20K's "0:invalid_class_id" line is dropped);
synonyms are comma-separated. ``*_THING`` flags mark thing classes (detectron2 panoptic metadata).
"""

from __future__ import annotations

CITYSCAPES = """road,railroad
sidewalk,pavement
building,buildings,edifice,edifices,house,ceiling
wall,walls,brick wall,stone wall,tile wall,wood wall
fence,fences
pole,poles
traffic light,traffic lights
traffic sign,stop sign
vegetation,tree,trees,palm tree,bushes
terrain,river,sand,sea,snow,water,mountain,grass,dirt,rock
sky,clouds
person
rider
car,cars
truck,trucks
bus,buses
train,trains,locomotive,locomotives,freight train
motorcycle,motorcycles
bicycle,bicycles,bike,bikes"""
CITYSCAPES_THING = tuple(k >= 11 for k in range(19))

ADE20K_150 = """wall,walls,brick wall,stone wall,interior wall
building,buildings,edifice,edifices
sky,clouds
floor,flooring
tree,trees
ceiling
road,route,street,roads,streets,routes
bed,beds
windowpane,window,windows
grass,grass field
cabinet,cabinets,wall mounted cabine
sidewalk,pavement
person,child,girl,boy,woman,man,people,children,girls,boys,women,men
earth,ground
door,double door,doors
table,tables,tablecloth
mountain,mount,mountains
plant,flora,plant life,plants,bushes
curtain,drape,drapery,mantle,pall
chair,chairs
car,automobile,cars
water
painting,picture,paintings,pictures,wallart,framed canvas
sofa,couch,sofas,couches
shelf,shelves
house exterior
sea,ocean
mirror,mirrors
rug,carpet,carpeting
field
armchair,armchairs
seat,seats
fence,fencing
desk,desks
rock,stone,rocks,stones
wardrobe,closet,press,wardrobes,closets
lamp,lamps
bathtub,bathing tub,bath,tub
railing,rail
cushion,cushions
pedestal
box,boxes
column,pillar
signboard,sign,signboards,signs
chest of drawers,chest,bureau,dresser
counter
sand
sink
skyscraper,skyscrapers
fireplace,hearth,open fireplace
refrigerator,icebox
grandstand,covered stand
path
stairs,steps
runway
case,display case,showcase,vitrine
pool table,billiard table,snooker table
pillow,pillows
screen door,shower door
stairway,staircase
river
bridge,span
bookcase
window screen,door screen
coffee table,cocktail table
toilet,commode,crapper,potty
flower,flowers
book,books
hill
bench,benches
countertop,counter top,worktop
stove,kitchen stove,kitchen range,kitchen range,cooking stove
palm tree,palm trees
kitchen island
computer,computing machine,computing device,data processor,electronic computer,information processing system
swivel chair
boat
bar
arcade machine,arcade machines
hovel,hut,hutch,shack,shanty
bus,autobus,double-decker,jitney,motorbus,motorcoach,omnibus,passenger vehicle
towel
light bulb,lightbulb,bulb,incandescent lamp,electric light,electric-light bulb
truck,motortruck
tower,towers
chandelier,pendant,pendent
awning,sunshade,sunblind
streetlight,street lamp
booth,cubicle,stall,kiosk
television receiver,television,television set,tv,tv set
airplane,aeroplane,airplanes,aeroplanes
dirt track
apparel,wearing apparel,dress,clothes
pole
land,soil
bannister,banister,balustrade,balusters,handrail
escalator,moving staircase,moving stairway
ottoman,pouf,pouffe,puff,hassock
bottle,bottles,water bottle
buffet,sideboard
poster,posting,placard,notice,bill,card
stage
van
ship
fountain
conveyer belt,conveyor belt,conveyer,conveyor,transporter
canopy
washer,automatic washer,washing machine
plaything,toy,toys
swimming pool,swimming bath
stool,stools
barrel,cask,barrels,casks
basket,handbasket
waterfall,falls
tent,collapsible shelter
bag,bags,gift bag,paper bag
minibike,motorbike
cradle
oven
ball,balls
food,solid food
step,stair
tank,storage tank
trade name,brand name,brand,marque
microwave,microwave oven
plant pots,plant pot,flower pot,flowerpot,planter
animal,animate being,dog,cat,horse,cow,sheep,zebra,girraffe,bird
bicycle,bike
lake
dishwasher,dish washer,dishwashing machine
projection screen
blanket,cover
sculpture,sculptures
exhaust hood
sconce,sconce lamp,sconce light
vase,vases
traffic light,traffic signal,traffic lights
tray,trays
ashcan,trash can,garbage can,wastebin,ash bin,ash-bin,ashbin,dustbin,trash barrel,trash bin
ceiling fan,floor fan
pier,wharf,wharfage,dock
crt screen
plate,plates
monitor,monitoring device,monitors
bulletin board,notice board
shower
radiator
cup,cups,drinking glass,drinking glasses
clock
flag,flags"""
_ADE_STUFF = {0, 1, 2, 3, 4, 5, 6, 9, 11, 13, 16, 17, 21, 25, 26, 28, 29, 34, 40, 46, 48, 51, 52, 54, 59, 60, 61,
              63, 68, 77, 79, 84, 91, 94, 96, 99, 100, 101, 105, 106, 109, 113, 114, 117, 122, 128, 131, 140,
              141, 145}
ADE20K_150_THING = tuple(k not in _ADE_STUFF for k in range(150))

TEMPLATE = "There is a {} in the scene."  # ADE150_CAT_TEMPL, used for both datasets


def synonyms(text: str) -> list[list[str]]:
    return [line.replace(", ", ",").split(",") for line in text.strip().splitlines()]


CLASS_LISTS: dict[str, tuple[list[list[str]], tuple[bool, ...]]] = {
    "cityscapes": (synonyms(CITYSCAPES), CITYSCAPES_THING),
    "ade20k": (synonyms(ADE20K_150), ADE20K_150_THING),
}
assert len(CLASS_LISTS["cityscapes"][0]) == 19 and len(CLASS_LISTS["ade20k"][0]) == 150
